"""A plain build hands doit only the renditions with work: the record of current renditions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mixdown.actions import current
from mixdown.loader import MixdownLoader, load_show
from mixdown.renderers import Registry

from .test_build import doit, ran

MASTERS = {"master:news/briefing@anna", "master:news/briefing@kofi", "master:news/extra"}


def handed(root: Path, fakes: dict[str, Any], *pos_args: str, command: str = "run") -> set[str]:
    """The mix, master and delivery tasks the loader hands doit for ``doit [command] pos_args``."""
    loader = MixdownLoader(root, registry=Registry(root, extra=fakes))
    loader.setup({})
    tasks = loader.load_tasks(SimpleNamespace(name=command), list(pos_args))
    return {t.name for t in tasks if t.name.split(":")[0] in ("mix", "master", "deliver") and ":" in t.name}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_noop_hands_doit_no_current_rendition_and_still_reports_each(
    built: Path, fakes: dict[str, Any]
) -> None:
    assert handed(built, fakes) == set()
    code, out, _ = doit(built, fakes)
    assert code == 0 and ran(out) == []
    for name in ("news/briefing@anna", "news/briefing@kofi", "news/extra"):
        assert f"-- mix:{name}" in out.splitlines() and f"-- master:{name}" in out.splitlines()
    # named, listed and cleaned, every rendition is still a task
    assert "master:news/extra" in handed(built, fakes, "master:news/extra")
    assert MASTERS <= handed(built, fakes, command="list")


def test_a_removed_file_hands_back_its_rendition_only_and_is_made_again(
    built: Path, fakes: dict[str, Any]
) -> None:
    wav = built / "build" / "news" / "extra.wav"
    before = digest(wav)
    wav.unlink()
    assert handed(built, fakes) == {"mix:news/extra", "master:news/extra"}
    code, out, err = doit(built, fakes)
    assert code == 0, out + err
    assert ran(out) == ["master:news/extra"] and digest(wav) == before
    assert handed(built, fakes) == set()


def test_a_file_changed_since_hands_back_its_rendition(built: Path, fakes: dict[str, Any]) -> None:
    wav = built / "build" / "news" / "briefing@kofi.wav"
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    assert handed(built, fakes) == {"mix:news/briefing@kofi", "master:news/briefing@kofi"}


def test_an_edit_hands_back_the_renditions_whose_master_changed(built: Path, fakes: dict[str, Any]) -> None:
    extra = built / "stanzas" / "extra.j2"
    extra.write_text(extra.read_text().replace("The bridge opened today.", "The bridge opened at noon."))
    assert handed(built, fakes) == {"mix:news/extra", "master:news/extra"}


def test_forget_and_clean_hand_every_rendition_back(built: Path, fakes: dict[str, Any]) -> None:
    code, _, _ = doit(built, fakes, "forget", "master:news/briefing@anna")
    assert code in (0, None)  # doit's clean and forget return None for success
    assert MASTERS <= handed(built, fakes)
    code, out, _ = doit(built, fakes)  # doit decides, and the record is made again
    assert code == 0 and ran(out) == ["master:news/briefing@anna"]
    assert handed(built, fakes) == set()
    code, _, _ = doit(built, fakes, "clean", "master:news/extra")
    assert code in (0, None)
    assert MASTERS <= handed(built, fakes)


def test_clean_of_every_task_removes_the_manifest_and_report_too(built: Path, fakes: dict[str, Any]) -> None:
    """They describe the deliverables a whole ``doit clean`` removes; ``-n`` removes nothing."""
    summaries = [built / "build" / "manifest.json", built / "build" / "report.html"]
    assert all(p.is_file() for p in summaries)
    code, out, _ = doit(built, fakes, "clean", "-n")
    assert code in (0, None) and all(p.is_file() for p in summaries)
    assert (built / "build" / "news" / "extra.wav").is_file()
    code, out, err = doit(built, fakes, "clean")
    assert code in (0, None), out + err
    assert not any(p.exists() for p in summaries) and not (built / "build" / "news" / "extra.wav").exists()
    assert "mixdown - removing file 'build/manifest.json'" in out
    code, out, _ = doit(built, fakes)  # from the cache: every master again, and both summaries
    assert code == 0 and set(ran(out)) >= MASTERS and all(p.is_file() for p in summaries)


def test_forget_with_no_task_forgets_every_task(built: Path, fakes: dict[str, Any]) -> None:
    """doit forgets its default tasks when given none; a show's default is every task."""
    code, out, err = doit(built, fakes, "forget")
    assert code in (0, None), out + err
    forgotten = {
        line.removeprefix("forgetting ") for line in out.splitlines() if line.startswith("forgetting ")
    }
    assert {"master", "mix", *MASTERS} <= forgotten
    code, out, _ = doit(built, fakes)  # doit decides every master again, from the cache
    assert code == 0 and set(ran(out)) >= MASTERS


def test_only_the_renditions_whose_tasks_succeeded_are_recorded(built: Path, fakes: dict[str, Any]) -> None:
    show = load_show(built, registry=Registry(built, extra=fakes))
    current.forget(built)
    current.recorder(show.plan, built, set())({"master:news/extra", "mix:news/briefing@anna"})
    cached = show.context.cache.keys()
    assert current.current(show.plan, built, cached) == {"news/extra"}


def test_what_a_current_rendition_publishes_beside_it_is_left_out_until_it_changes(
    built: Path, fakes: dict[str, Any]
) -> None:
    """Captions and timelines are part of a rendition's record: a no-op hands doit none of them
    (with 10,000 variants, 20,000 tasks to check), and a new chapter title hands back exactly
    the renditions it changes, of which only the captions and timelines are made again."""

    def beside(*pos_args: str) -> set[str]:
        loader = MixdownLoader(built, registry=Registry(built, extra=fakes))
        loader.setup({})
        tasks = loader.load_tasks(SimpleNamespace(name="run"), list(pos_args))
        return {t.name for t in tasks if t.name.startswith(("captions:", "otio:"))}

    assert beside() == set()
    code, out, _ = doit(built, fakes)
    assert code == 0 and ran(out) == []
    assert {"-- captions:news/extra", "-- otio:news/briefing@kofi"} <= set(out.splitlines())
    stanza = built / "stanzas" / "briefing.j2"
    stanza.write_text(
        stanza.read_text().replace("## story voice=ben", '## story voice=ben title="The story"')
    )
    briefings = {f"{kind}:news/briefing@{who}" for kind in ("captions", "otio") for who in ("anna", "kofi")}
    assert beside() == briefings
    code, out, err = doit(built, fakes)
    assert code == 0, out + err
    assert set(ran(out)) == briefings
    assert "The story" in (built / "build" / "news" / "briefing@anna.chapters.txt").read_text()
    assert beside() == set()
    assert "captions:news/extra" in beside("captions:news/extra")  # named, it is still a task
