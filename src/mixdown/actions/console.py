"""What a build shows while it runs: progress on a terminal, spaced lines in CI, JSON, or quiet.

:class:`ProgressReporter` is mixdown's console reporter (doit's own lines:
``.  task`` when one runs, ``-- task`` when it is up to date). On a
terminal it keeps a live line under them with the tasks done of the total,
the renders in flight, the elapsed time and an ETA, and the position of a
long mix or master (:func:`mixdown.actions.progress.positions`);
when the output is not a terminal (CI logs) it writes that line as plain
text at most every :data:`EVERY` seconds. Under ``doit -v 0`` it writes
nothing but failures.

:class:`JsonBuildReporter` is doit's ``--reporter json`` with mixdown's end
of build (:mod:`mixdown.actions.finish`) and each task's saved values in
its entry, with a deliverable's loudness per file (:func:`describe_with`). Its output is one JSON
document: everything printed while it runs goes into the document's
``out``, and the loader writes its own lines to stderr under it.
"""

from __future__ import annotations

import io
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from doit.exceptions import InvalidTask
from doit.reporter import JsonReporter, TaskResult

from ..errors import MixdownError
from . import finish
from .progress import clock, positions

__all__ = ["EVERY", "JsonBuildReporter", "ProgressReporter", "configure", "describe_with", "quiet"]

#: seconds between two progress lines when the output is not a terminal
EVERY = 5.0
_RENDERS = ("voice:", "sfx:", "music:")

_guard = threading.Lock()
_state: dict[str, Any] = {"quiet": False}


def configure(*, quiet: bool) -> None:
    """Set the build's console: ``quiet`` (doit ``-v 0``) shows failures only."""
    with _guard:
        _state["quiet"] = quiet


def quiet() -> bool:
    """Whether the build shows failures only (``-v 0``)."""
    with _guard:
        return bool(_state["quiet"])


def _closure(tasks: dict[str, Any], selected: list[str]) -> set[str]:
    """The names of the tasks with actions that ``selected`` may run, dependencies included."""
    seen: set[str] = set()
    todo = list(selected)
    while todo:
        name = todo.pop()
        if name in seen or name not in tasks:
            continue
        seen.add(name)
        todo.extend(tasks[name].task_dep)
        todo.extend(tasks[name].setup_tasks)
    return {name for name in seen if tasks[name].actions and not name.startswith("_")}


class ProgressReporter(finish.BuildReporter):
    """doit's console lines with a progress line: live on a terminal, spaced out otherwise."""

    desc = "console output with build progress, then mixdown's end of build (uploads, mixdown.lock)"

    def __init__(self, outstream: Any, options: dict[str, Any]) -> None:
        super().__init__(outstream, options)
        self.total = 0
        self.finished = 0
        self.in_flight: set[str] = set()
        self.started = time.monotonic()
        self.last_line = self.started
        self.live: Any = None
        self._lock = threading.Lock()
        # -v 0: the actions' result lines (printed, not captured: mixdown.actions.tasks) go
        # nowhere until the build ends; failures are written to ``outstream``, kept above
        self._saved = None
        if quiet():
            self._saved, sys.stdout = sys.stdout, io.StringIO()

    def initialize(self, tasks: dict[str, Any], selected_tasks: list[str]) -> None:
        self.total = len(_closure(tasks, selected_tasks))
        self.started = self.last_line = time.monotonic()
        isatty = getattr(self.outstream, "isatty", None)
        if not quiet() and self.total and callable(isatty) and isatty():
            self.live = _live(self.outstream)

    def write(self, text: str) -> None:
        if quiet():
            return
        if self.live is not None:
            self.live.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        else:
            super().write(text)

    def execute_task(self, task: Any) -> None:
        with self._lock:
            if task.name.startswith(_RENDERS):
                self.in_flight.add(task.name)
        super().execute_task(task)
        self._show()

    def add_success(self, task: Any) -> None:
        self._count(task)
        super().add_success(task)
        self._show()

    def skip_uptodate(self, task: Any) -> None:
        self._count(task)
        super().skip_uptodate(task)
        self._show()

    def add_failure(self, task: Any, fail: Any) -> None:
        self._count(task)
        if quiet():  # -v 0: failures still show, in full
            self.outstream.write(f"{fail.get_name()} - taskid:{task.name}\n{fail.get_msg()}\n")
            self.failures.append({"task": task, "exception": fail})
            return
        super().add_failure(task, fail)

    def _count(self, task: Any) -> None:
        with self._lock:
            self.in_flight.discard(task.name)
            if task.actions and not task.name.startswith("_"):
                self.finished += 1

    def status(self) -> str:
        """The progress line: tasks done of the total, renders in flight, elapsed time and ETA."""
        with self._lock:
            done, total, flying = self.finished, max(self.total, self.finished), len(self.in_flight)
        elapsed = time.monotonic() - self.started
        eta = "–" if done == 0 or done >= total else clock(elapsed / done * (total - done))
        long = "; ".join(f"{t} {p}" for t, p in sorted(positions().items()))
        line = f"[{done}/{total} tasks] {flying} renders in flight, {clock(elapsed)} elapsed, ETA {eta}"
        return f"{line}; {long}" if long else line

    def _show(self) -> None:
        if quiet():
            return
        if self.live is not None:
            self.live.update(_text(self.status()))
            return
        now = time.monotonic()
        if now - self.last_line >= EVERY:
            self.last_line = now
            super().write(self.status() + "\n")

    def complete_run(self) -> None:
        live, self.live = self.live, None
        if live is not None:
            live.stop()
        try:
            if quiet():
                finish.finish()
            else:
                super().complete_run()
        except MixdownError as err:
            raise InvalidTask(str(err)) from None
        finally:
            if self._saved is not None:
                sys.stdout, self._saved = self._saved, None


def _text(line: str) -> Any:
    from rich.text import Text

    return Text(line, style="bold")


def _live(stream: Any) -> Any:
    """A rich live display on ``stream``, or None where rich is not installed."""
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        return None
    live = Live(_text("starting"), console=Console(file=stream), refresh_per_second=4, transient=True)
    live.start()
    return live


def describe_with(describe: Callable[[str], dict[str, Any]] | None) -> None:
    """Have ``--reporter json`` add ``describe(task name)`` to each task's values (the loader's:
    a deliverable's loudness, :func:`mixdown.actions.publishing.loudness_of`)."""
    with _guard:
        _state["describe"] = describe


class _ValuedResult(TaskResult):  # type: ignore[misc]  # doit ships no type hints
    """doit's JSON entry of a task, with the values it saved and what the loader knows of it."""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = super().to_dict()
        values = dict(getattr(self.task, "values", None) or {})
        with _guard:
            describe = _state.get("describe")
        if describe is not None and self.result in ("success", "up-to-date"):
            values.update(describe(self.task.name))
        data["values"] = _finite(values)
        return data


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None: JSON has no infinity (silence reads ``-inf``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class JsonBuildReporter(JsonReporter):  # type: ignore[misc]  # doit ships no type hints
    """doit's JSON reporter, with each task's values and mixdown's end of build."""

    desc = "output in JSON format (with each task's values), then mixdown's end of build"

    def get_status(self, task: Any) -> None:
        self.t_results[task.name] = _ValuedResult(task)

    def execute_task(self, task: Any) -> None:
        finish.noted(task.name, ran=True)
        super().execute_task(task)

    def add_success(self, task: Any) -> None:
        finish.noted(task.name, done=True)
        super().add_success(task)

    def skip_uptodate(self, task: Any) -> None:
        finish.noted(task.name, done=True)
        super().skip_uptodate(task)

    def complete_run(self) -> None:
        failed = None
        try:
            finish.finish()  # while stdout is still captured: what it prints goes into "out"
        except MixdownError as err:
            failed = str(err)
            self.errors.append(failed)
        super().complete_run()
        if failed is not None:
            raise InvalidTask(failed) from None
