"""A podcast feed of a show's MP3 masters: RSS 2.0 with the iTunes and Podcasting 2.0 tags.

For a show's own ``dodo.py``; one call makes the whole doit task::

    from mixdown.feed import feed_task

    def task_feed():
        return feed_task(".", base_url="https://example.org/show/")

It writes ``build/feed.xml`` after the masters: one ``<item>`` per MP3
master, its ``<enclosure>`` (URL under ``base_url``, length in bytes,
``audio/mpeg``), ``<itunes:duration>`` in seconds measured from the file,
and ``<podcast:chapters>`` / ``<podcast:transcript>`` for the sidecars the
captions write beside it (``P.chapters.json``, ``P.vtt`` for ``P.mp3``)
when they exist. Plain :mod:`xml.etree`; written atomically.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import MixdownError
from .loader import load_show
from .store.files import write_bytes_atomic

__all__ = ["FILENAME", "Episode", "episodes", "feed_task", "mp3_seconds", "write_feed"]

#: the feed's file name in build/
FILENAME = "feed.xml"
ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
#: Podcasting 2.0's types of the sidecars, by their suffix after the master's stem
SIDECARS = {"chapters": (".chapters.json", "application/json+chapters"), "transcript": (".vtt", "text/vtt")}


@dataclass(frozen=True)
class Episode:
    """One item of the feed: an MP3 master, the name of its rendition, its title (its
    ``[metadata] title``, else the name) and the sidecars the show writes beside it."""

    name: str
    path: Path
    title: str = ""
    sidecars: tuple[Path, ...] = ()


def episodes(root: str | os.PathLike[str]) -> tuple[str, Path, list[Episode]]:
    """The show in ``root``: its name, its build folder and its MP3 masters, in plan order."""
    show = load_show(root)
    project = show.context.project
    on = project.publish
    wanted = {SIDECARS["transcript"][0]: on.captions, SIDECARS["chapters"][0]: on.chapters}
    found = [
        Episode(
            mix.name,
            path,
            (mix.tags.title if mix.tags is not None else "") or mix.name,
            tuple(s for suffix, s in _sidecars_of(path) if wanted[suffix]),
        )
        for mix in show.plan.mixes
        for path in mix.outputs
        if path.suffix.lower() == ".mp3"
    ]
    return project.name, project.build_dir, found


def mp3_seconds(path: Path) -> float:
    """The duration of the MP3 file ``path`` in seconds, as its header and frames say (mutagen).

    Raises
    ------
    MixdownError
        The file cannot be read as MP3.
    """
    from mutagen.mp3 import MP3, HeaderNotFoundError

    try:
        audio = MP3(path)
    except (OSError, HeaderNotFoundError) as err:
        raise MixdownError(f"{path}: cannot read it as MP3 ({err}); build it again (doit master)") from None
    return float(audio.info.length)


def write_feed(
    root: str | os.PathLike[str],
    base_url: str,
    *,
    title: str | None = None,
    description: str | None = None,
) -> Path:
    """Write ``build/feed.xml`` for the show in ``root``; returns its path.

    Parameters
    ----------
    root : path-like
        The show's directory.
    base_url : str
        Where ``build/`` is published: each file's URL is ``base_url`` joined with its
        path under ``build/``.
    title, description : str, optional
        The channel's; by default the show's ``[project] name``.
    """
    name, build, items = episodes(root)
    base = base_url if base_url.endswith("/") else base_url + "/"
    ET.register_namespace("itunes", ITUNES)
    ET.register_namespace("podcast", PODCAST)
    rss = ET.Element("rss", {"version": "2.0"})
    channel = ET.SubElement(rss, "channel")
    _text(channel, "title", title or name)
    _text(channel, "link", base)
    _text(channel, "description", description or title or name)
    for episode in items:
        _item(channel, episode, build, base)
    ET.indent(rss)
    path = build / FILENAME
    write_bytes_atomic(path, ET.tostring(rss, encoding="utf-8", xml_declaration=True) + b"\n")
    return path


def feed_task(root: str | os.PathLike[str], base_url: str, **options: Any) -> dict[str, Any]:
    """The doit task (a dict, for a ``dodo.py``'s ``task_feed``) that writes the feed.

    It depends on every MP3 master and the captions and chapters the show writes
    beside them (so it runs after the tasks that make them, and again when one
    changes), and on the ``master`` group; ``options`` go to :func:`write_feed`.
    """
    _, build, items = episodes(root)
    deps = [str(e.path) for e in items]
    deps += [str(s) for e in items for s in e.sidecars]
    return {
        "actions": [(_write, [root, base_url, options])],
        "file_dep": deps,
        "task_dep": ["master"],
        "targets": [str(build / FILENAME)],
        "doc": f"the podcast feed of the MP3 masters: build/{FILENAME}",
        "clean": True,
    }


def _write(root: str | os.PathLike[str], base_url: str, options: dict[str, Any]) -> None:
    write_feed(root, base_url, **options)


def _item(channel: ET.Element, episode: Episode, build: Path, base: str) -> None:
    """``episode``'s ``<item>``: title, guid, enclosure, duration and its sidecars' tags."""
    path = episode.path
    url = _url(base, path, build)
    item = ET.SubElement(channel, "item")
    _text(item, "title", episode.title or episode.name)
    ET.SubElement(item, "guid", {"isPermaLink": "false"}).text = url
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    _text(item, "pubDate", format_datetime(mtime))
    size = path.stat().st_size
    ET.SubElement(item, "enclosure", {"url": url, "length": str(size), "type": "audio/mpeg"})
    # seconds to the millisecond: a whole number would be up to half a second off
    _text(item, f"{{{ITUNES}}}duration", f"{mp3_seconds(path):.3f}")
    for tag, sidecar in _sidecars(path).items():
        if sidecar.is_file():
            kind = SIDECARS[tag][1]
            ET.SubElement(item, f"{{{PODCAST}}}{tag}", {"url": _url(base, sidecar, build), "type": kind})


def _sidecars(path: Path) -> dict[str, Path]:
    """The sidecar files of the master ``path`` (``P.mp3`` → ``P.chapters.json``, ``P.vtt``)."""
    stem = path.with_suffix("")
    return {tag: stem.with_name(stem.name + suffix) for tag, (suffix, _) in SIDECARS.items()}


def _sidecars_of(path: Path) -> list[tuple[str, Path]]:
    """Each sidecar of the master ``path`` with its suffix."""
    return [(SIDECARS[tag][0], sidecar) for tag, sidecar in _sidecars(path).items()]


def _url(base: str, path: Path, build: Path) -> str:
    return base + quote(path.relative_to(build).as_posix(), safe="/@")


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text
