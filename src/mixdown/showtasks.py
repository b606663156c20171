"""A show's own doit tasks: the ``dodo.py`` beside its ``project.toml``.

The loader (:class:`mixdown.loader.MixdownLoader`) adds them to the same doit
run as mixdown's tasks, so ``doit``, ``doit list`` and ``doit NAME`` treat them
like any other. They may ``task_dep`` on mixdown's targets (``master:…``,
``deliver:…``, a group such as ``master``) and ``file_dep`` on files in
``build/``. They are collected as doit collects a ``dodo.py`` (``task_*``
functions, ``create_doit_tasks`` objects, ``@create_after``); its
``DOIT_CONFIG`` is not read: the show's doit settings are mixdown's.

A build of one shard (``--shard I/N``) leaves them out: they publish the
whole show. A show without ``dodo.py`` pays one ``stat`` for this.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from doit.exceptions import InvalidDodoFile, InvalidTask
from doit.loader import load_tasks

from .errors import one_line
from .plan.model import Plan
from .settings import SHOW_TASKS_FILE

__all__ = ["FILENAME", "ShowTasks", "load_show_tasks", "mixdown_names"]

#: the file, beside project.toml, that holds a show's own tasks
FILENAME = SHOW_TASKS_FILE
#: mixdown's task groups (``doit master`` builds every master)
GROUPS = ("voice", "sfx", "music", "section", "mix", "master", "deliver")


@dataclass(frozen=True)
class ShowTasks:
    """The show's own tasks, ready for doit, and the file they came from."""

    path: Path
    tasks: list[Any]


def mixdown_names(plan: Plan) -> set[str]:
    """Every task name mixdown could give doit for ``plan``, its groups included."""
    names = set(GROUPS)
    names.update(asset.task for asset in plan.assets.values())
    names.update(section.task for section in plan.sections.values())
    for mix in plan.mixes:
        names.update((f"mix:{mix.name}", f"master:{mix.name}"))
        names.update(f"deliver:{mix.name}/{d.name}" for d in mix.deliveries)
    return names


def load_show_tasks(
    root: Path,
    *,
    taken: Collection[str],
    given: Collection[str],
    command_names: Iterable[str] = (),
    allow_delayed: bool = False,
    args: Iterable[str] = (),
) -> ShowTasks | None:
    """Import ``root/dodo.py`` and build its tasks; None when the show has none.

    Parameters
    ----------
    root : Path
        The show's directory (holding ``project.toml``).
    taken : Collection[str]
        Every name mixdown's tasks could have (:func:`mixdown_names`): a task
        of the same name is an error.
    given : Collection[str]
        The names of mixdown's tasks handed to doit in this run. A plain build
        leaves out the targets that are current; a ``task_dep`` on one of
        those is dropped, as it is satisfied.
    command_names, allow_delayed, args
        As doit's own loader passes them to :func:`doit.loader.load_tasks`.

    Raises
    ------
    doit.exceptions.InvalidDodoFile
        With one line naming ``dodo.py``: it fails to import, defines a task
        whose name is one of mixdown's, or is otherwise invalid to doit.
    """
    path = root / FILENAME
    if not path.is_file():
        return None
    module = _import(path)
    try:
        tasks = load_tasks(vars(module), list(command_names), allow_delayed=allow_delayed, args=list(args))
    except InvalidTask as err:
        raise InvalidDodoFile(f"{path}: {one_line(err)}") from None
    except Exception as err:  # a task_* function that fails: doit would print its traceback
        raise InvalidDodoFile(f"{path}: {_where(err, path)}{type(err).__name__}: {one_line(err)}") from None
    missing = set(taken) - set(given)
    for task in tasks:
        if task.name in taken:
            raise InvalidDodoFile(
                f"{path}: task {task.name!r} has the name of one of mixdown's tasks; rename it "
                f"(mixdown's are named {', '.join(GROUPS)} and NAME:…)"
            )
        task.task_dep = [dep for dep in task.task_dep if dep not in missing]
    return ShowTasks(path, tasks)


def _import(path: Path) -> ModuleType:
    """Import ``path`` under a name no other show's ``dodo.py`` shares, with its folder on
    ``sys.path`` (as doit does) so it can import its own helpers."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    name = f"mixdown_show_dodo_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has both
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module  # before it runs, as for any import: a dataclass in it looks itself up
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        del sys.modules[name]
        raise InvalidDodoFile(
            f"{path}:{err.lineno}: SyntaxError: {err.msg}; fix it, or move it away"
        ) from None
    except Exception as err:
        del sys.modules[name]
        raise InvalidDodoFile(
            f"{path}: could not import it: {_where(err, path)}{type(err).__name__}: {one_line(err)}"
        ) from None
    return module


def _where(err: BaseException, path: Path) -> str:
    """``line N: `` of the last frame in ``path`` of ``err``'s traceback (else of its last frame)."""
    frames = traceback.extract_tb(err.__traceback__)
    here = [f for f in frames if os.path.realpath(f.filename) == os.path.realpath(path)]
    if here:
        return f"line {here[-1].lineno}: "
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
