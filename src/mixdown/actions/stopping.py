"""Stopping a build cleanly: Ctrl-C, SIGTERM and SIGHUP unwind every action through its cleanup.

A signal interrupts Python's main thread only. doit runs mixdown's actions
there (``doit``) or on daemon worker threads (``doit -n 2``: mixdown's doit
settings run tasks on threads), which the interpreter drops on the floor
when the main thread ends: an interrupted master would leave its partial
cache object, WAV and MP3 behind, over two gigabytes, until the next build. And by
default SIGTERM (a cancelled CI job, ``timeout``, a container stopping) and
SIGHUP (a closed terminal) end the process with no cleanup at all.

:func:`install` (from the main thread) makes SIGTERM and SIGHUP raise
:class:`KeyboardInterrupt` as Ctrl-C does, and hooks the end of the
process: when the interrupt leaves the main thread, :func:`requested`
turns true, and the actions still running on workers (each counted by
:func:`action`) stop at their next progress report (:func:`check` raises
:class:`Interrupted`), remove their partial files and return; the process
then ends with one line on stderr instead of a traceback. A second signal
ends it at once.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import MixdownError

__all__ = ["Interrupted", "action", "check", "install", "requested"]

#: how long the end of the process waits for running actions to clean up
GRACE_SECONDS = 60.0

_stop = threading.Event()
_idle = threading.Condition()
_running = 0


class Interrupted(MixdownError):
    """The build was interrupted: the action stops and removes what it had written."""


def requested() -> bool:
    """Whether the build is stopping."""
    return _stop.is_set()


def check() -> None:
    """Raise :class:`Interrupted` if the build is stopping (long steps call it as they go)."""
    if _stop.is_set():
        raise Interrupted("interrupted: stopping; partial files removed")


@contextmanager
def action() -> Iterator[None]:
    """Count a running action, so that the end of an interrupted process waits for its cleanup."""
    global _running
    check()
    with _idle:
        _running += 1
    try:
        yield
    finally:
        with _idle:
            _running -= 1
            _idle.notify_all()


def install() -> None:
    """From the main thread: SIGTERM and SIGHUP interrupt as Ctrl-C does, and an interrupted
    process waits for its running actions to clean up (see the module's notes). Signals
    whose handling someone else has set are left alone; elsewhere than the main thread,
    a no-op."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not isinstance(sys.excepthook, _Hook):
        sys.excepthook = _Hook(sys.excepthook)
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_DFL:
            signal.signal(number, _interrupt)


def _interrupt(number: int, frame: Any) -> None:
    signal.signal(number, signal.SIG_DFL)  # a second one ends the process at once
    print(f"mixdown: {signal.Signals(number).name}: stopping", file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def _wait_for_actions(timeout: float) -> bool:
    """Stop the running actions and wait for them to return; whether they all did."""
    _stop.set()
    with _idle:
        return _idle.wait_for(lambda: _running == 0, timeout)


class _Hook:
    """``sys.excepthook`` for an interrupt that leaves the main thread: the actions on other
    threads stop and clean up first, and the process says so in one line."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def __call__(self, kind: type[BaseException], error: BaseException, trace: Any) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            self.hook(kind, error, trace)
            return
        if _wait_for_actions(GRACE_SECONDS):
            print("mixdown: interrupted; no partial file was kept", file=sys.stderr, flush=True)
        else:
            print(
                f"mixdown: interrupted; an action was still running after {GRACE_SECONDS:.0f} s "
                "and may have left a hidden .tmp file beside its output",
                file=sys.stderr,
                flush=True,
            )
