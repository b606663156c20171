"""``mixdown init``: a new show that builds with ``doit`` as it stands.

The show renders offline: its voice is the piper voice (``mixdown[piper]``)
the demo uses, its sound effect comes from the built-in synth. It has one
script of two sections with an SFX cue, a variants CSV of two listeners
(two deliverables), the loader setting in ``doit.cfg``, a ``.gitignore`` for
what a build writes, and a ``dodo.py`` whose example task is commented out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import MixdownError
from .store.files import write_bytes_atomic

__all__ = ["FILES", "Scaffold", "init", "scaffold"]

PROJECT = """\
# A mixdown show: `doit` renders it into build/ (see the README of mixdown).
[project]
name = "My Show"
voice = "host"
vars = { show = "My Show" }

# The offline piper voice (pip install 'mixdown[piper]'); no network, no API key.
[voices.host]
renderer = "piper"

# A procedural sound effect from the built-in synth.
[sfx.chime]
renderer = "synth"
preset = "chime"
seed = 1
gain_db = -10.0

# One deliverable per row of data/listeners.csv.
[scripts.episode]
template = "stanzas/episode.j2"
variants = "data/listeners.csv"

[master]
preset = "podcast"           # -16 LUFS integrated, -1 dBTP
formats = ["mp3"]
"""

STANZA = """\
{#- The episode: `## name` starts a section; [sfx:NAME] places a sound effect. -#}
## welcome
Hello {{ name }}, and welcome to {{ show }}. [sfx:chime]

## news
Here is the news from {{ city }}.
"""

LISTENERS = """\
id,name,city
ada,Ada,London
kai,Kai,Oslo
"""

DOIT_CFG = """\
# doit finds mixdown's tasks through its loader (installed with mixdown).
[GLOBAL]
loader = mixdown
"""

GITIGNORE = """\
# What a build writes: deliverables, doit's state and the plan memo, the local cache.
# Commit mixdown.lock and takes.toml with the show.
build/
.mixdown/
cache/
__pycache__/
"""

DODO = '''\
"""This show's own doit tasks, run with mixdown's (`doit list` shows both).

A task may depend on mixdown's targets (task_dep: "master", "master:episode@ada")
or on files in build/ (file_dep). Delete this file if the show needs none.
"""

# def task_publish():
#     """Copy the masters to a folder to publish."""
#     return {
#         "task_dep": ["master"],
#         "actions": ["mkdir -p public && cp build/*.mp3 public/"],
#         "verbosity": 2,
#     }
'''

#: the files ``mixdown init`` writes, by path within the show
FILES: dict[str, str] = {
    "project.toml": PROJECT,
    "stanzas/episode.j2": STANZA,
    "data/listeners.csv": LISTENERS,
    "doit.cfg": DOIT_CFG,
    ".gitignore": GITIGNORE,
    "dodo.py": DODO,
}


@dataclass(frozen=True)
class Scaffold:
    """A show :func:`scaffold` wrote: its folder and its files' paths."""

    root: Path
    files: list[Path]


def scaffold(root: Path) -> Scaffold:
    """Write a new show into ``root`` (created if need be).

    Parameters
    ----------
    root : Path
        The show's folder. It may exist but must hold none of :data:`FILES`.

    Returns
    -------
    Scaffold
        The folder and the files written.

    Raises
    ------
    MixdownError
        ``root`` already holds a ``project.toml`` (or another of the files), or
        is not a folder; nothing is written.
    """
    if root.exists() and not root.is_dir():
        raise MixdownError(f"{root}: not a folder; give a new or existing folder for the show")
    for name in FILES:
        if (root / name).exists():
            what = "a show" if name == "project.toml" else f"a {name}"
            raise MixdownError(
                f"{root / name}: this folder already holds {what}; nothing was written: "
                "init a new folder (mixdown init DIR)"
            )
    written = []
    for name, text in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(path, text.encode("utf-8"))
        written.append(path)
    return Scaffold(root, written)


def init(target: Path) -> list[str]:
    """``mixdown init``: :func:`scaffold` a show into ``target``; the lines to print."""
    made = scaffold(target)
    where = "" if target.resolve() == Path.cwd() else f"cd {target} && "
    return [f"wrote {path}" for path in made.files] + [
        f"run `{where}doit` to render it into build/ (the voice needs mixdown[piper])"
    ]
