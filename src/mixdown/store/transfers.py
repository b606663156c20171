"""Moving files to and from an fsspec filesystem: many at once, and without a reader ever seeing half of one.

:func:`each` runs a batch of calls concurrently (on an async filesystem's own
event loop, else on threads), returning each result or exception;
:func:`put_new` creates a file only if it is absent, atomically where the
backend can (S3's conditional PUT, a hard link on a local filesystem);
:func:`put_over` replaces one so that readers see the old file or the new.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["BATCH", "each", "put_new", "put_over"]

#: transfers in flight at once in a batch
BATCH = 32


def each(fs: Any, calls: list[tuple[Any, ...]]) -> list[Any]:
    """``fs.<name>(*args)`` for every ``(name, *args)`` concurrently: each result or exception.

    An async filesystem (s3fs, gcsfs, adlfs) runs them on its own event loop,
    as its batch ``cat``/``get`` do, without the listing those start with.
    """
    if not calls:
        return []
    if getattr(fs, "async_impl", False):
        import asyncio

        from fsspec.asyn import sync

        async def gathered() -> list[Any]:
            gate = asyncio.Semaphore(BATCH)

            async def one(name: str, *args: Any) -> Any:
                async with gate:
                    return await getattr(fs, f"_{name}")(*args)

            return await asyncio.gather(*(one(*call) for call in calls), return_exceptions=True)

        found: list[Any] = sync(fs.loop, gathered)
        return found
    if len(calls) == 1:  # a build's read-through fetches one object at a time: no pool for it
        name, *args = calls[0]
        return [_caught(getattr(fs, name), *args)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(BATCH, len(calls)), thread_name_prefix="mixdown-fetch") as pool:
        futures = [pool.submit(_caught, getattr(fs, call[0]), *call[1:]) for call in calls]
        return [f.result() for f in futures]


def _caught(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception as err:
        return err


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def _has_create(fs: Any) -> bool:
    """Whether ``fs`` creates a file only if absent, atomically (S3's conditional PUT)."""
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "s3" in protocol


def put_new(fs: Any, data: Path | bytes, rpath: str) -> None:
    """Write ``data`` (a local file's bytes, or bytes) to ``rpath`` unless it exists
    (:class:`FileExistsError`): atomically on S3 and on a local remote, else checked first."""
    if _has_create(fs):
        if isinstance(data, bytes):
            fs.pipe_file(rpath, data, mode="create")
        else:
            fs.put_file(os.fspath(data), rpath, mode="create")
    elif _is_local(fs):
        tmp = _local_temporary(fs, data, rpath)
        try:
            os.link(tmp, rpath)  # fails if rpath exists: an atomic create
        finally:
            os.unlink(tmp)
    else:
        if fs.exists(rpath):
            raise FileExistsError(rpath)
        put_over(fs, data, rpath)


def put_over(fs: Any, data: Path | bytes, rpath: str) -> None:
    """Write ``data`` to ``rpath``, replacing what is there, so that readers see old or new."""
    if _is_local(fs):
        os.replace(_local_temporary(fs, data, rpath), rpath)
    elif isinstance(data, bytes):
        fs.pipe_file(rpath, data)
    else:
        fs.put_file(os.fspath(data), rpath)


def _local_temporary(fs: Any, data: Path | bytes, rpath: str) -> str:
    """A copy of ``data`` beside ``rpath`` on a local remote, under a name no reader looks for."""
    parent = os.path.dirname(rpath)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(rpath)}.{secrets.token_hex(4)}.part")
    if isinstance(data, bytes):
        with open(tmp, "wb") as fh:
            fh.write(data)
    else:
        fs.put_file(os.fspath(data), tmp)
    return tmp
