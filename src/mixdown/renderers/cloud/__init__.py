"""Cloud renderers: one HTTP layer (:mod:`~mixdown.renderers.cloud.http`:
timeouts, retries, concurrency limits, redaction), the shared
:class:`~mixdown.renderers.cloud.base.CloudRenderer`, and one module per
provider."""
