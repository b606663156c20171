"""The remote cache's backends: which library opens a URL, with what options, and how its errors read.

A remote cache is any fsspec URL (:mod:`mixdown.store.remote`). Its
protocol names the library that serves it (:data:`BACKENDS`: s3fs, gcsfs,
adlfs, paramiko) and mixdown's extra that installs it; :func:`open_filesystem`
opens one, with :data:`OPTIONS` that make an unreachable endpoint known in
seconds and keep no stale listings. What goes wrong is one line that says
whether the remote is down or refused the credentials, and which variables
give them (:func:`trouble_line`); the URL is shown without its userinfo
(:func:`redacted`), and no message repeats a password it held.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from ..errors import MixdownError

__all__ = [
    "BACKENDS",
    "OPTIONS",
    "Backend",
    "RemoteUnavailable",
    "open_filesystem",
    "redacted",
    "trouble_line",
]

#: storage options per protocol: give up on an unreachable endpoint in seconds, not minutes; and
#: keep no listings: other machines write to the remote all the time, and a cached listing of a
#: directory makes the backend answer "no such file" for what was uploaded into it since
_FRESH = {"use_listings_cache": False}
OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {
        "config_kwargs": {"connect_timeout": 5, "retries": {"max_attempts": 2, "mode": "standard"}},
        **_FRESH,
    },
    "gs": _FRESH,
    "gcs": _FRESH,
    "az": _FRESH,
    "abfs": _FRESH,
}


class Backend(NamedTuple):
    """An fsspec protocol's library, mixdown's extra that installs it, and where its credentials come from."""

    library: str
    extra: str
    credentials: str


_GCS = Backend("gcsfs", "gcs", "GOOGLE_APPLICATION_CREDENTIALS, or gcloud auth application-default login")
_AZURE = Backend("adlfs", "azure", "AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and _KEY")
BACKENDS: dict[str, Backend] = {
    "s3": Backend("s3fs", "s3", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"),
    "gs": _GCS,
    "gcs": _GCS,
    "az": _AZURE,
    "abfs": _AZURE,
    "sftp": Backend("paramiko", "sftp", "an SSH key the agent or ~/.ssh offers"),
}


class RemoteUnavailable(MixdownError):
    """The remote cache cannot be used: unreachable, credentials refused, or its library missing."""


def redacted(url: str) -> str:
    """``url`` without userinfo, query or fragment: what messages show of it."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def open_filesystem(url: str, protocol: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` (whose scheme is ``protocol``) and the root path in it.

    :class:`RemoteUnavailable` says what is missing (the backend's library,
    and the extra that installs it) or that ``url`` is not an fsspec URL.
    """
    backend = BACKENDS.get(protocol)
    try:
        import fsspec

        # a new instance per build: credentials and endpoints are read from the environment now
        fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True, **OPTIONS.get(protocol, {}))
        if protocol == "s3":
            fs.retries = 2  # on top of botocore's own: an unreachable remote is known in seconds
    except ImportError:
        library = backend.library if backend else f"the fsspec backend of {protocol}://"
        hint = f"pip install 'mixdown[{backend.extra}]'" if backend else f"install {library}"
        raise RemoteUnavailable(
            f"remote cache {redacted(url)} needs {library}, which is not installed: {hint}"
        ) from None
    except (ValueError, OSError) as err:
        raise RemoteUnavailable(
            f"remote cache {redacted(url)} is not a usable fsspec URL ({_why(err, url)})"
        ) from None
    return fs, root.rstrip("/")


def trouble_line(err: BaseException, url: str, protocol: str) -> str:
    """The one line for ``err`` from the remote at ``url``: credentials refused (and which
    variables give them), or unreachable."""
    why = _why(err, url)
    shown = redacted(url)
    if _refused(err):
        backend = BACKENDS.get(protocol)
        fix = f"set {backend.credentials}" if backend else "check the backend's credentials"
        return f"remote cache {shown} refused the {protocol} credentials ({why}): {fix}"
    return f"remote cache {shown} is unreachable ({why})"


def _refused(err: BaseException) -> bool:
    """Whether ``err`` is the backend refusing the credentials (not the remote being down)."""
    if isinstance(err, PermissionError):
        return True
    names = " ".join(type(e).__name__ for e in (err, err.__cause__, err.__context__) if e is not None)
    text = str(err)
    return any(
        word in names or word in text
        for word in (
            "Credential",
            "InvalidAccessKeyId",
            "SignatureDoesNotMatch",
            "AccessDenied",
            "ExpiredToken",
        )
    )


def _why(err: BaseException, url: str) -> str:
    """``err`` in a few words, with nothing of the URL's userinfo."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    parts = urlsplit(url)
    for secret in (parts.username, parts.password):
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= 200 else text[:197] + "..."
