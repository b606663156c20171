"""What a build does once doit has run its tasks: the work that spans the whole build.

Tasks are doit's; some work belongs to the build as a whole and must follow
every task, whichever ran: waiting for the remote cache's uploads, writing
``mixdown.lock``, trimming the local cache. The loader registers each as a
*finisher* (:func:`at_finish`) when it hands doit the tasks, and
:class:`BuildReporter`, the reporter mixdown sets in doit's configuration,
runs them when doit completes the run (after a failed task too: what did
build is recorded). A finisher that raises :class:`~mixdown.errors.MixdownError`
fails the build: doit prints its one line as ``ERROR: …`` and exits 3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from doit.exceptions import InvalidTask
from doit.reporter import ConsoleReporter

from ..errors import MixdownError

__all__ = ["BuildReporter", "at_finish", "done", "finish", "noted", "ran"]

_guard = threading.Lock()
_finishers: list[Callable[[list[str]], None]] = []
_ran: list[str] = []  # the tasks that executed in this build (not up to date), in order
_done: set[str] = set()  # the tasks that succeeded or were up to date in this build


def at_finish(finisher: Callable[[list[str]], None]) -> None:
    """Run ``finisher(tasks_that_ran)`` once doit has run this build's tasks."""
    with _guard:
        _finishers.append(finisher)


def ran() -> list[str]:
    """The names of the tasks that executed so far in this build."""
    with _guard:
        return list(_ran)


def done() -> set[str]:
    """The names of the tasks that succeeded or were up to date so far in this build."""
    with _guard:
        return set(_done)


def noted(task: str, *, ran: bool = False, done: bool = False) -> None:
    """Note that ``task`` started running (``ran``) or succeeded or was up to date (``done``):
    what a reporter tells :func:`ran` and :func:`done`."""
    with _guard:
        if ran:
            _ran.append(task)
        if done:
            _done.add(task)


def reset() -> None:
    """Forget the finishers and tasks of an earlier build in this process (the loader starts each)."""
    with _guard:
        _finishers.clear()
        _ran.clear()
        _done.clear()


def finish() -> None:
    """Run every finisher, in the order registered, then forget them.

    Each runs even when one before it failed; the first failure is raised
    after the last has run.
    """
    with _guard:
        finishers, tasks = list(_finishers), list(_ran)
        _finishers.clear()
        _ran.clear()
    failed: MixdownError | None = None
    for finisher in finishers:
        try:
            finisher(tasks)
        except MixdownError as err:
            failed = failed or err
    if failed is not None:
        raise failed


class BuildReporter(ConsoleReporter):  # type: ignore[misc]  # doit ships no type hints
    """doit's console reporter, noting which tasks ran and running the finishers at the end."""

    desc = "console output, then mixdown's end of build (uploads, mixdown.lock)"

    def execute_task(self, task: Any) -> None:
        noted(task.name, ran=True)
        super().execute_task(task)

    def add_success(self, task: Any) -> None:
        noted(task.name, done=True)
        super().add_success(task)

    def skip_uptodate(self, task: Any) -> None:
        noted(task.name, done=True)
        super().skip_uptodate(task)

    def complete_run(self) -> None:
        try:
            finish()
        except MixdownError as err:
            super().complete_run()
            raise InvalidTask(str(err)) from None
        super().complete_run()
