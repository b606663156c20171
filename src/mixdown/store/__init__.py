"""Where audio is kept: the content-addressed cache, the one way files are
written (a temporary file beside the target, published by rename), and the
shared remote cache over fsspec (:mod:`~mixdown.store.remote`, moving files
with :mod:`~mixdown.store.transfers`)."""
