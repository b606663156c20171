"""Where audio is kept: the content-addressed cache (:mod:`~mixdown.store.cache`, its per-key
locks in :mod:`~mixdown.store.locks` and its remembered listing in :mod:`~mixdown.store.listing`),
the one way files are written (a temporary file beside the target, published by rename), and the
shared remote cache over fsspec (:mod:`~mixdown.store.remote`, its backends in
:mod:`~mixdown.store.backends`, moving files with :mod:`~mixdown.store.transfers`)."""
