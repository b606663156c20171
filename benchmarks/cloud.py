"""200 cloud voice lines through the concurrency limiter, against the ideal.

A fake ElevenLabs server on 127.0.0.1 answers each request after 250 ms and
refuses (429) whatever exceeds 10 requests in flight, as the real service
does past an account's concurrency. The show's ``[providers.elevenlabs]``
allows 10; doit runs 16 worker threads, more than the limit, so the limiter
(not doit) must keep traffic at 10. Baseline: the ideal wall time
200 × 0.25 s / 10 = 5.0 s. Prints the measured time, its ratio to the
ideal, and the 429s the server had to send (target: none).

Usage: ``python benchmarks/cloud.py [--lines N] [--latency S] [--limit K]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakeserver import KEY, FakeSpeechServer  # noqa: E402  (the fake lives with the tests)

SHOW = """
[project]
voice = "narrator"

[voices.narrator]
renderer = "elevenlabs"
voice_id = "JBFqnCBsd6RMkjVDRZzb"

[providers.elevenlabs]
base_url = "{url}"
concurrency = {limit}

[scripts.lines]
template = "stanzas/lines.j2"
"""

DOIT_CFG = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    ideal = args.lines * args.latency / args.limit
    with (
        tempfile.TemporaryDirectory(prefix="mixdown-cloud-") as tmp,
        FakeSpeechServer(latency=args.latency, limit=args.limit) as server,
    ):
        root = Path(tmp)
        (root / "stanzas").mkdir()
        (root / "doit.cfg").write_text(DOIT_CFG)
        (root / "project.toml").write_text(SHOW.format(url=server.url, limit=args.limit))
        text = "\n\n".join(
            f"Cloud line {i}: the quick brown fox jumps over the lazy dog." for i in range(args.lines)
        )
        (root / "stanzas" / "lines.j2").write_text("## all\n" + text + "\n")
        env = {**os.environ, "ELEVENLABS_API_KEY": KEY}
        start = time.perf_counter()
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "doit", "-n", "16", "-P", "thread", "voice"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        ended = time.monotonic()
        if done.returncode != 0:
            raise SystemExit(f"doit failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        rendered = len(list((root / "cache" / "objects").rglob("*.wav")))
    first, last = server.first_request or started, server.last_answer or ended
    print(f"{args.lines} lines, {args.latency * 1000:.0f} ms latency, concurrency limit {args.limit}")
    print(f"ideal (lines x latency / limit)   {ideal:7.2f} s")
    print(f"doit -n 16 -P thread voice        {elapsed:7.2f} s   ratio to ideal {elapsed / ideal:5.2f}x")
    print(
        f"rendered {rendered}; most requests in flight {server.most_active}; 429s sent {server.limit_refusals}"
    )
    print(
        f"  start-up and planning {first - started:5.2f} s, requests {last - first:5.2f} s, "
        f"after the last answer {ended - last:5.2f} s"
    )
    if rendered != args.lines or server.limit_refusals:
        raise SystemExit("FAILED: every line must render, with no 429 from exceeding the limit")


if __name__ == "__main__":
    main()
