"""Malformed shows that load but fail as they build: one line naming the target, no traceback,
nothing corrupt in cache/ or build/, and the next good build completes.

Each case runs the real ``doit`` command in a child process on a small show
whose voice comes from the show's own ``renderers/tone.py``. (Shows that fail
as they load are the corpus of tests/test_corpus.py.)
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX processes and limits")

# A deterministic voice: a tone whose pitch follows the text, `seconds` long; each call is
# noted in calls.log, and `sleep` makes the render take a while (as a cloud voice does).
TONE = textwrap.dedent(
    """
    import hashlib, os, time

    import numpy as np

    from mixdown.renderers import RendererBase, RenderResult


    class Renderer(RendererBase):
        version = "1"
        params = {"seconds": (int, float), "sleep": (int, float)}

        def render(self, request):
            with open(os.path.join(request.root, "calls.log"), "a") as log:
                log.write(request.target + "\\n")
            time.sleep(float(request.params.get("sleep", 0.0)))
            digest = hashlib.sha256((request.text or request.target).encode()).digest()
            sr, seconds = 48000, float(request.params.get("seconds", 1.0))
            t = np.arange(round(seconds * sr)) / sr
            f0 = 140.0 + digest[0]
            y = 0.3 * np.sin(2 * np.pi * f0 * t) * (1.0 + 0.5 * np.sin(2 * np.pi * 3.0 * t))
            return RenderResult(np.stack([y, 0.8 * y], axis=1).astype(np.float32), sr)
    """
)

SHOW_TOML = """\
[project]
name = "Corpus"
voice = "host"

[voices.host]
renderer = "tone"
seconds = {seconds}
sleep = {sleep}

[modules.m]

[scripts.ep]
module = "m"
template = "stanzas/ep.j2"

[master]
formats = {formats}
{extra}
"""

DOIT_CFG = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"


def write_show(
    root: Path,
    *,
    lines: int = 3,
    seconds: float = 1.0,
    sleep: float = 0.0,
    formats: Sequence[str] = ("wav",),
    extra: str = "",
    renderer: str = TONE,
) -> Path:
    """A show of ``lines`` voice lines of ``seconds`` each, voiced by ``renderer`` (renderers/tone.py)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(
        SHOW_TOML.format(
            seconds=seconds,
            sleep=sleep,
            formats="[" + ", ".join(f'"{f}"' for f in formats) + "]",
            extra=extra,
        )
    )
    (root / "doit.cfg").write_text(DOIT_CFG)
    (root / "renderers").mkdir(exist_ok=True)
    (root / "renderers" / "tone.py").write_text(renderer)
    (root / "stanzas").mkdir(exist_ok=True)
    text = "".join(f"Line number {n} of the programme.\n\n" for n in range(lines))
    (root / "stanzas" / "ep.j2").write_text("## body\n" + text)
    return root


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MIXDOWN_CACHE"}


def run_doit(
    root: Path, *args: str, preexec: Callable[[], None] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """The ``doit`` command on the show in ``root``, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env=environment(),
        preexec_fn=preexec,
        timeout=timeout,
    )


def leftovers(root: Path) -> list[Path]:
    """Temporary and lock files anywhere in build/ and cache/."""
    found = []
    for folder in ("build", "cache"):
        for path in (root / folder).rglob("*"):
            if (path.name.startswith(".") and ".tmp" in path.name) or path.suffix == ".lock":
                found.append(path)
    return found


def assert_nothing_corrupt(root: Path) -> None:
    """Every audio file in build/ and cache/ reads whole; no temporary file is left."""
    assert leftovers(root) == []
    for folder in ("build", "cache"):
        for path in (root / folder).rglob("*"):
            if path.suffix in (".wav", ".flac"):
                y, _ = sf.read(path, always_2d=True)
                assert len(y) > 0 and np.isfinite(y).all(), path
                assert sf.info(str(path)).frames == len(y)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """The lines of a failed build that say what failed (doit's and mixdown's)."""
    return [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]


def calls(root: Path) -> list[str]:
    log = root / "calls.log"
    return log.read_text().split() if log.exists() else []


# ---- renderers that misbehave -------------------------------------------------------------

BAD_RENDERERS = {
    "empty audio": "np.zeros((0, 1), np.float32), 48000",
    "None": None,
    "a wrong type": "'not audio', 48000",
    "NaN samples": "np.full((48000, 1), np.nan, np.float32), 48000",
    "a bad sample rate": "np.zeros((48000, 1), np.float32), 'fast'",
    "an arbitrary exception": "raise",
}

EXPECTED = {
    "empty audio": "returned implausible audio (0.000 s",
    "None": "returned NoneType, not a RenderResult",
    "a wrong type": "returned bad audio",
    "NaN samples": "NaN",
    "a bad sample rate": "sample rate 'fast'",
    "an arbitrary exception": "raised ZeroDivisionError: division by zero",
}


def bad_renderer(case: str) -> str:
    body = BAD_RENDERERS[case]
    if body is None:
        returned = "return None"
    elif body == "raise":
        returned = "return 1 / 0"
    else:
        returned = f"return RenderResult({body})"
    return textwrap.dedent(
        f"""
        import numpy as np

        from mixdown.renderers import RendererBase, RenderResult


        class Renderer(RendererBase):
            params = {{"seconds": (int, float), "sleep": (int, float)}}

            def render(self, request):
                {returned}
        """
    )


@pytest.mark.parametrize("case", list(BAD_RENDERERS))
def test_a_show_renderer_that_misbehaves_fails_in_one_line(tmp_path: Path, case: str) -> None:
    root = write_show(tmp_path / "show", renderer=bad_renderer(case))
    done = run_doit(root)
    assert done.returncode == 1, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "Traceback" not in said
    failed = [
        line for line in error_lines(done) if "voice:m/ep/body/0" in line and "renderers/tone.py" in line
    ]
    assert len(failed) == 1, said
    assert EXPECTED[case] in failed[0] and "nothing was cached" in failed[0]
    assert not list((root / "cache").rglob("*.wav")) if (root / "cache").exists() else True
    assert_nothing_corrupt(root)
    (root / "renderers" / "tone.py").write_text(TONE)
    again = run_doit(root)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (root / "build" / "m" / "ep.wav").is_file()
    assert_nothing_corrupt(root)


# ---- a full disk ----------------------------------------------------------------------------


def file_size_limit(limit: int) -> Callable[[], None]:
    """For the child: no file may grow past ``limit`` bytes, and a write past it fails with
    EFBIG instead of killing the process (SIGXFSZ ignored): a full disk, unprivileged."""

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limited


def test_a_full_cache_disk_fails_in_one_line_and_the_next_build_completes(tmp_path: Path) -> None:
    root = write_show(tmp_path / "show", lines=2, seconds=0.5)
    assert run_doit(root, "voice").returncode == 0  # small objects: 0.5 s lines
    # the section's pre-mix (mono, ~0.3 MB) can be written, the mix (~1 MB) cannot
    done = run_doit(root, preexec=file_size_limit(1 << 19))
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said, said
    failed = [line for line in error_lines(done) if line.startswith("mix:m/ep: cannot write")]
    assert len(failed) == 1, said
    assert "cache/objects/" in failed[0] and "File too large" in failed[0]
    assert_nothing_corrupt(root)
    assert run_doit(root).returncode == 0
    assert calls(root) == ["voice:m/ep/body/0", "voice:m/ep/body/1"]  # the lines were not paid twice
    assert (root / "build" / "m" / "ep.wav").is_file()
    assert_nothing_corrupt(root)


def test_a_full_build_disk_fails_in_one_line_and_the_next_build_completes(tmp_path: Path) -> None:
    root = write_show(tmp_path / "show", lines=2, seconds=1.0, formats=("flac", "wav"))
    assert run_doit(root).returncode == 0
    for path in (root / "build" / "m").iterdir():
        path.unlink()
    done = run_doit(root, "-a", "master:m/ep", preexec=file_size_limit(1 << 16))  # libsndfile's own writes
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said, said
    failed = [line for line in error_lines(done) if line.startswith("master:m/ep: cannot write")]
    assert len(failed) == 1, said
    assert "build/m/ep." in failed[0], failed[0]
    assert not list((root / "build" / "m").iterdir())
    assert_nothing_corrupt(root)
    assert run_doit(root, "-a", "master:m/ep").returncode == 0
    assert sorted(p.name for p in (root / "build" / "m").iterdir()) == ["ep.flac", "ep.wav"]
    assert_nothing_corrupt(root)


def test_a_disk_full_error_is_one_line_wherever_it_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC as a real full disk raises it: from the cache's writes, in-process."""
    import errno

    from mixdown.actions.render import render_asset
    from mixdown.codecs import wav as audio
    from mixdown.loader import load_show

    root = write_show(tmp_path / "show", lines=1)
    show = load_show(root)
    asset = next(iter(show.plan.assets.values()))

    def full(fd: int, data: memoryview, offset: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(audio, "write_at", full)
    message = render_asset(show.context, asset).message
    assert "\n" not in message.strip()
    assert message.startswith(f"{asset.task}: cannot write cache/objects/{asset.key[:2]}/{asset.key}.wav")
    assert "No space left on device [errno 28]" in message
    assert_nothing_corrupt(root)


# ---- a read-only cache ----------------------------------------------------------------------


def test_a_read_only_cache_fails_before_anything_is_paid_for(tmp_path: Path) -> None:
    root = write_show(tmp_path / "show", lines=2)
    (root / "cache" / "objects").mkdir(parents=True)
    for folder in (root / "cache" / "objects", root / "cache"):
        os.chmod(folder, 0o555)
    try:
        done = run_doit(root, preexec=_without_overriding_permissions)
    finally:
        for folder in (root / "cache", root / "cache" / "objects"):
            os.chmod(folder, 0o755)
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said, said
    failed = [line for line in error_lines(done) if "the cache" in line and "is not writable" in line]
    assert len(failed) == 1 and failed[0].startswith("voice:m/ep/body/0: "), said
    assert calls(root) == []  # nothing rendered, so nothing thrown away
    assert run_doit(root).returncode == 0
    assert calls(root) == ["voice:m/ep/body/0", "voice:m/ep/body/1"]
    assert_nothing_corrupt(root)


def _without_overriding_permissions() -> None:
    """In the child: root, too, obeys file permissions (a read-only directory would not stop
    it otherwise): CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER leave its bounding set."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


# ---- two builds at once ---------------------------------------------------------------------


def test_two_builds_at_once_render_each_line_once(tmp_path: Path) -> None:
    root = write_show(tmp_path / "show", lines=3, sleep=1.0)
    builds = [
        subprocess.Popen(
            [sys.executable, "-m", "doit"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environment(),
        )
        for _ in range(2)
    ]
    said = [build.communicate(timeout=300)[0] for build in builds]
    assert [build.returncode for build in builds] == [0, 0], said
    assert sorted(calls(root)) == [f"voice:m/ep/body/{n}" for n in range(3)]  # each line paid once
    waited = [line for out in said for line in out.splitlines() if "waiting for another build" in line]
    assert waited and all(line.endswith("waiting for another build rendering it") for line in waited[:1])
    assert (root / "build" / "m" / "ep.wav").is_file()
    assert_nothing_corrupt(root)


def test_a_read_only_cache_that_holds_everything_builds(tmp_path: Path) -> None:
    # A team's shared cache mounted read-only, or a CI cache restored without write access: a
    # build that needs nothing new from it must not need to write to it (no lock to take).
    root = write_show(tmp_path / "show", lines=2)
    assert run_doit(root).returncode == 0
    shutil.rmtree(root / "build")
    folders = [p for p in (root / "cache").rglob("*") if p.is_dir()] + [root / "cache"]
    for folder in folders:
        os.chmod(folder, 0o555)
    try:
        again = run_doit(root, preexec=_without_overriding_permissions)
        forced = run_doit(root, "-a", preexec=_without_overriding_permissions)
    finally:
        for folder in folders:
            os.chmod(folder, 0o755)
    for done in (again, forced):
        assert done.returncode == 0, done.stdout + done.stderr
    assert calls(root) == ["voice:m/ep/body/0", "voice:m/ep/body/1"]  # the first build's, only
    assert list((root / "build").rglob("*.wav"))  # the files made again, from the cache alone
    assert_nothing_corrupt(root)
