"""The longform benchmarks' show: a synthetic programme of any length, and timed subprocesses.

Used by ``longform.py`` and ``sections.py``. :func:`make_show` writes the
show: speech-like voice lines (about 8.5 a minute) from a renderer in the
show's own renderers/ (its length is ``len(text) / CPS`` seconds, so an edit
of the same number of characters renders at the same length), two voices,
synth SFX inside lines and in sequence, the synth music bed under it all,
and [master] preset "podcast" with WAV and MP3. :func:`measured` runs a
command and reads its wall and CPU time and peak memory.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LINES_PER_MINUTE = 8.5  # 510 lines in an hour: ~7 s each with the gap
CPS = 14.0  # characters per second of the speech renderer
SCRIPT = "episode"
MARK = 'name = "Longform benchmark"'  # how --keep recognises a show make_show made

SPEECH = '''"""Speech-like audio for the longform benchmark: no words, but speech's rhythm and spectrum.

Deterministic from the text: ``len(text) / cps`` seconds of 24 kHz mono. A
glottal pulse train (pitch wavering and falling through the line, spectrum
falling 12 dB an octave) and some breath go through two formant resonators
whose balance, the vowel, changes every syllable; syllables come about 4.5 a
second, with gaps between words and a hiss on some onsets. Envelopes run at
a 1 kHz control rate. Peaks are at -3 dBFS, give or take a few dB per line,
about 19 dB over the line's loudness, as in unprocessed speech.
"""

import hashlib
import math

import numpy as np
from scipy.signal import sosfilt

from mixdown.renderers import RendererBase, RenderResult

SR = 24000
STEP = 24  # audio samples per control sample (1 kHz)
_VOICED = np.array([chr(c).isalnum() for c in range(256)], dtype=np.float32)
_GLOTTIS = np.array([[0.01, 0, 0, 1, -1.8, 0.81]], dtype=np.float32)  # -12 dB/octave above ~400 Hz
_SMOOTH = np.full(12, 1 / 12, dtype=np.float32)  # 12 ms fades at word edges


def _resonator(freq, q):
    """A band-pass biquad (0 dB at ``freq``) as a one-section float32 ``sos``."""
    w = 2 * math.pi * freq / SR
    alpha = math.sin(w) / (2 * q)
    a0 = 1 + alpha
    coefficients = [alpha / a0, 0.0, -alpha / a0, 1.0, -2 * math.cos(w) / a0, (1 - alpha) / a0]
    return np.array([coefficients], dtype=np.float32)


class Renderer(RendererBase):
    """A stand-in TTS that sounds, to a loudness meter and a ducker, like speech."""

    version = "VERSION"  # a hash of this source: a --keep show's cache never serves stale lines
    kinds = frozenset({"voice"})
    params = {"pitch": (int, float), "cps": (int, float)}

    def render(self, request):
        text = request.text.strip() or "."
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
        cps = float(request.params.get("cps", 14.0))
        f0 = float(request.params.get("pitch", 120.0)) * rng.uniform(0.9, 1.1)
        n = max(int(len(text) * SR / cps), SR // 2)
        m = -(-n // STEP)
        # control rate: which character is spoken (letters sound, the rest is a gap), syllables, pitch
        tc = np.arange(m) / (SR / STEP)
        chars = np.frombuffer(text.encode("ascii", "replace"), dtype=np.uint8)
        mask = np.convolve(_VOICED[chars[(np.arange(m) * len(chars)) // m]], _SMOOTH, "same")
        w = 2 * np.pi * rng.uniform(0.2, 0.5)
        phase = 4.5 * (tc - 0.15 / w * (np.cos(w * tc + rng.uniform(0, 6.3)) - 1))  # ~4.5 Hz, wandering
        syllable = phase.astype(np.int64)
        count = int(syllable[-1]) + 1
        within = phase - syllable
        hump = np.sin(np.pi * within) ** 2 * rng.uniform(0.5, 1.0, count)[syllable] * mask
        vowel = rng.uniform(0.0, 1.0, count)[syllable]
        hiss = (rng.uniform(0, 1, count) < 0.3)[syllable] * np.clip(1 - 4 * within, 0, 1) * mask
        pitch = f0 * (1 - 0.12 * tc / tc[-1] + 0.06 * np.sin(2 * np.pi * 0.7 * tc + rng.uniform(0, 6.3)))
        cycles = np.cumsum(pitch) / (SR / STEP)
        pulses = np.interp(np.arange(1, int(cycles[-1])), cycles, tc)
        # audio rate: pulses and breath through two formant resonators, plus hiss
        noise = rng.random(n, dtype=np.float32) - np.float32(0.5)
        source = noise * np.float32(0.3)
        glottis = np.zeros(n, dtype=np.float32)
        glottis[(pulses * SR).astype(np.int64)] = 20.0  # well above the breath, once smoothed
        source += sosfilt(_GLOTTIS, glottis)
        lo, hi = rng.uniform(450, 700), rng.uniform(1300, 2000)
        y = np.repeat((hump * (1 - vowel)).astype(np.float32), STEP)[:n]
        y *= sosfilt(_resonator(lo, 2.5), source)
        y += np.repeat((hump * vowel * 0.7).astype(np.float32), STEP)[:n] * sosfilt(_resonator(hi, 4.0), source)
        y[1:] += np.repeat((0.2 * hiss).astype(np.float32), STEP)[1:n] * np.diff(noise)
        peak_db = -3.0 + rng.uniform(-2.5, 1.5)
        y *= np.float32(10 ** (peak_db / 20) / max(float(np.abs(y).max()), 1e-9))
        return RenderResult(y.astype(np.float32)[:, None], SR, {"peak_dbfs": round(peak_db, 2)})
'''

PROJECT = f"""
[project]
{MARK}
sample_rate = 48000
channels = 2
voice = "host"

[voices.host]
renderer = "speech"
pitch = 115
cps = {CPS}

[voices.guest]
renderer = "speech"
pitch = 190
cps = {CPS}
gain_db = -1.0

[sfx.sting]
renderer = "synth"
preset = "sting"
seed = 4
gain_db = -8.0

[sfx.whoosh]
renderer = "synth"
preset = "whoosh"
seed = 1
gain_db = -12.0

[sfx.chime]
renderer = "synth"
preset = "chime"
seed = 3
gain_db = -10.0

[sfx.click]
renderer = "synth"
preset = "click"
seed = 2
gain_db = -10.0

[sfx.door]
renderer = "synth"
preset = "door"
seed = 6
gain_db = -12.0

[sfx.riser]
renderer = "synth"
preset = "riser"
seed = 8
gain_db = -16.0

[music.bed]
renderer = "synth"
preset = "pulse"
tempo = 96
seed = 5
gain_db = -20.0

[scripts.{SCRIPT}]
template = "stanzas/{SCRIPT}.j2"
music = "bed"

[master]
preset = "podcast"
formats = ["wav", "mp3"]
"""

DOIT_CFG = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"

WORDS = """
the a of and to in is that it for on with as was at by this from be are or have an they which one
you were all we her she there would their will when who him been has more if no out so up said what
its about into than them can only other new some could time these two may then do first any my now
such like our over man me even most made after also did many before must through back years where
much your way well down should because each just those people how too little state good very make
world still own see men work long get here between both life being under never day same another know
while last might us great old year off come since against go came right used take three council
library river bridge market weather morning evening station harbour garden school museum
festival orchestra season volunteers record migrating birds footbridge saturday sunday engineers
reading workshops winter summer spring autumn region science history music theatre kitchen
recipe travel island mountain valley village city coast forest railway airport hospital
""".split()
CUES = ("chime", "click", "door", "riser")


@dataclass
class Show:
    """What was generated: counts for the report."""

    lines: int
    guest_lines: int
    sections: int
    cues: int
    stings: int


def sentence_text(rng: random.Random, chars: int) -> str:
    """Sentences of plain words, about ``chars`` characters long."""
    words: list[str] = []
    length, start = 0, True
    while length < chars - 3 or not words:  # -3: the last word overshoots by about that
        word = rng.choice(WORDS)
        word = word.capitalize() if start else word
        start = rng.random() < 0.1
        word += "." if start else ("," if rng.random() < 0.06 else "")
        words.append(word)
        length += len(word) + 1
    return " ".join(words).rstrip(",.") + "."


def make_show(root: Path, minutes: float) -> Show:
    """Write the show: project.toml, doit.cfg, renderers/speech.py and one script in sections."""
    rng = random.Random(1)
    (root / "renderers").mkdir(parents=True, exist_ok=True)
    (root / "stanzas").mkdir(exist_ok=True)
    version = hashlib.sha256(SPEECH.encode()).hexdigest()[:12]
    (root / "renderers" / "speech.py").write_text(SPEECH.replace('"VERSION"', f'"{version}"'))
    (root / "doit.cfg").write_text(DOIT_CFG)
    (root / "project.toml").write_text(PROJECT)
    sections = max(3, round(minutes / 7.5))
    lines = max(round(minutes * LINES_PER_MINUTE), 2 * sections)
    stings = sections + 1  # a sting to open, a whoosh into each later section, a chime to close
    # seconds of speech: the programme less the bed's lead-in and tail ([mix] defaults), the
    # line and section gaps, and the stings in sequence (sting 1.5 s, whoosh 1.2 s, chime 2.0 s)
    overhead = 1.5 + 2.0 + 0.35 * (lines + stings) + 0.9 * sections + 1.5 + 1.2 * (sections - 1) + 2.0
    weights = [rng.uniform(0.4, 1.6) for _ in range(lines)]
    budget = max(minutes * 60 - overhead, lines * 1.0) * CPS / sum(weights)
    body, guest, cues = [], 0, 0
    for index in range(lines):
        section = index * sections // lines
        if index == 0 or section != (index - 1) * sections // lines:
            name = "open" if section == 0 else "close" if section == sections - 1 else f"part{section:02d}"
            body.append(f"## {name}\n" + ("[sfx:sting]" if section == 0 else "[sfx:whoosh]"))
        text = sentence_text(rng, round(weights[index] * budget))
        if index % 7 == 3:  # a cue inside the line, at a word boundary
            words = text.split(" ")
            at = rng.randrange(1, len(words)) if len(words) > 1 else 1
            text = " ".join([*words[:at], f"[sfx:{CUES[cues % len(CUES)]}]", *words[at:]])
            cues += 1
        if rng.random() < 0.3:
            text = f"[voice:guest] {text}"
            guest += 1
        body.append(text)
    body.append("[sfx:chime]")
    (root / "stanzas" / f"{SCRIPT}.j2").write_text("\n\n".join(body) + "\n")
    return Show(lines, guest, sections, cues, stings)


@dataclass
class Run:
    """A finished subprocess: wall time, peak RSS in bytes, exit code and output."""

    seconds: float
    peak_rss: int
    code: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system seconds of the process and its children
    stolen: float | None = None  # seconds the hypervisor gave the host's CPUs to others meanwhile
    in_memory_files: int = 0  # peak growth of the host's memory files (tmpfs) meanwhile, bytes

    @property
    def memory(self) -> int:
        """Peak RSS plus what the run kept in memory files (the mix's voice scratch, in /dev/shm)."""
        return self.peak_rss + self.in_memory_files


def shmem_bytes() -> int | None:
    """The host's memory held by tmpfs files and shared memory (``Shmem`` in /proc/meminfo)."""
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("Shmem:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def steal_seconds() -> float | None:
    """The host's CPU time stolen by the hypervisor so far (``/proc/stat``), or None off Linux."""
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measured(cmd: list[str], cwd: Path | None = None) -> Run:
    """Run ``cmd`` and read its wall time, CPU time and peak memory (``ru_maxrss``, KiB on Linux,
    and the peak growth of memory files meanwhile)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stolen = steal_seconds()
        base = shmem_bytes()
        peak = [0]
        done = threading.Event()

        def watch() -> None:  # memory files are not in the process's RSS: sampled every 20 ms
            while base is not None and not done.wait(0.02):
                peak[0] = max(peak[0], (shmem_bytes() or base) - base)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        after = steal_seconds()
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    stole = after - stolen if after is not None and stolen is not None else None
    return Run(seconds, usage.ru_maxrss * 1024, code, *text, usage.ru_utime + usage.ru_stime, stole, peak[0])


def cpu_used(run: Run) -> str:
    """How the run used the CPUs, and what the hypervisor took from the host's vCPUs meanwhile."""
    text = f"CPU {run.cpu:.1f} s at {run.cpu / max(run.seconds, 1e-9):.2f} cores"
    return text if run.stolen is None else f"{text}, steal {run.stolen:.1f} s"


def doit(root: Path, *args: str) -> Run:
    """``doit *args`` in ``root`` through this Python, measured; exits with its output if it fails."""
    run = measured([sys.executable, "-m", "doit", *args], cwd=root)
    if run.code != 0:
        out = "\n".join(ln for ln in run.stdout.splitlines() if not ln.startswith("-- "))  # not the cached
        raise SystemExit(
            f"{' '.join(['doit', *args])} failed ({run.code}):\n{out[-3000:]}\n{run.stderr[-3000:]}"
        )
    return run


def prepare(root: Path, *, keep_cache: bool = True) -> None:
    """Empty ``root`` for a new show; a show :func:`make_show` made there keeps its cache/ unless
    ``keep_cache`` is false (then nothing of it is left: the next build starts from an empty cache)."""
    if not root.exists() or not any(root.iterdir()):
        root.mkdir(parents=True, exist_ok=True)
        return
    project = root / "project.toml"
    if not (project.is_file() and MARK in project.read_text()):
        raise SystemExit(
            f"{root} is not empty and holds no show made by the longform benchmarks; give another --keep DIR"
        )
    for entry in root.iterdir():
        if entry.is_dir() and (entry.name != "cache" or not keep_cache):
            shutil.rmtree(entry)
        elif not entry.is_dir():
            entry.unlink()


def workdir(keep: Path | None, prefix: str) -> Path:
    """The benchmark's working directory: ``keep`` emptied (to leave the show there afterwards),
    or a new temporary directory; created."""
    root = keep or Path(tempfile.mkdtemp(prefix=prefix))
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


def mib(size: float) -> str:
    """``size`` bytes in MiB, right-aligned."""
    return f"{size / 2**20:8.0f} MiB"


def verdict(ok: bool) -> str:
    """PASS or MISS, for a target met or not."""
    return "PASS" if ok else "MISS"
