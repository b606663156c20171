"""Where audio is kept: the content-addressed cache, and the one way files are
written (a temporary file beside the target, published by rename)."""
