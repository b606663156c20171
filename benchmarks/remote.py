"""A fresh clone built from the remote cache, against copying the same objects with fsspec.

Starts moto's S3 on 127.0.0.1, builds a synthetic show of ``--lines`` voice
lines (1 s each, a stub TTS) with the remote configured (everything is
uploaded as it renders), then in a second, empty checkout of the same show:

* ``doit``: the warm build on a fresh clone (every line from the remote,
  then the mixes and masters), and the seconds its one batch download took;
* a plain parallel ``fs.get`` of the same objects into an empty directory
  (what ``aws s3 sync`` does), the floor for moving those bytes;
* a no-op ``doit`` with the remote configured, against one without.

Prints the figures and their ratios. Usage:
``python benchmarks/remote.py [--lines N]`` (needs ``moto[server]`` and ``s3fs``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from noop import byte_compile, make_show  # noqa: E402  # the same synthetic show

STUB = '''
import numpy as np
from mixdown.renderers import RendererBase, RenderResult


class Renderer(RendererBase):
    """A stand-in TTS: one second of tone per line (64 kB in the cache)."""

    kinds = frozenset({"voice"})
    params = {"pitch": (int, float)}

    def render(self, request):
        t = np.arange(16000) / 16000
        f = 150 + (hash(request.text) % 200)
        return RenderResult((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)[:, None], 16000)
'''


def doit(root: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=root, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"doit {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    if "warning" in done.stderr:
        raise SystemExit(f"doit {' '.join(args)}: {done.stderr[-2000:]}")
    return elapsed, done.stdout


def plain_get(url: str, keys: list[str], into: Path) -> float:
    """Seconds for a parallel fsspec ``get`` of the objects and records of ``keys``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    paths = [f"{root}/objects/{k[:2]}/{k}.{ext}" for k in keys for ext in ("json", "wav")]
    into.mkdir(parents=True)
    start = time.perf_counter()
    fs.get(paths, [str(into / p.rsplit("/", 1)[-1]) for p in paths], batch_size=32)
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000)
    args = parser.parse_args()
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="mixdown-remote-bench-"))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        import mixdown

        # doit runs in the show's directory: a relative PYTHONPATH would find another mixdown there
        source = str(Path(mixdown.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])]),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(env)
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        url = "s3://bench/cache"
        byte_compile()
        a, b = work / "a", work / "b"
        make_show(a, args.lines)
        (a / "renderers" / "stub.py").write_text(STUB)
        shutil.copytree(a, b)  # a fresh clone: the same files, an empty cache
        remote = {**env, "MIXDOWN_REMOTE": url}
        first, out = doit(a, remote, "-n", "2")
        print(f"show: {args.lines} voice lines of 1 s; first build with uploads  {first:7.2f} s")
        print(
            "  "
            + next((ln for ln in out.splitlines() if ln.startswith("remote cache: uploaded")), out[-800:])
        )

        warm, out = doit(b, remote)
        fetched = next(line for line in out.splitlines() if line.startswith("remote cache: "))
        batch = float(re.search(r" in ([0-9.]+) s\)", fetched).group(1))  # type: ignore[union-attr]
        from mixdown.store.remote import Remote

        keys = sorted(Remote(url).keys())
        copy = plain_get(url, keys, work / "copy")
        print(f"fresh clone, warm build from the remote     {warm:7.2f} s   ({fetched})")
        print(f"  its batch download                        {batch:7.2f} s")
        print(f"parallel fsspec get of the same {len(keys)} objects {copy:7.2f} s")
        print(f"ratio batch download / plain get            {batch / copy:7.2f}x")
        print(f"ratio whole warm build / plain get          {warm / copy:7.2f}x")

        without = statistics.median(doit(b, env)[0] for _ in range(5))
        withr = statistics.median(doit(b, remote)[0] for _ in range(5))
        print(f"no-op doit without a remote                 {without:7.3f} s")
        print(f"no-op doit with the remote configured       {withr:7.3f} s   ratio {withr / without:5.2f}x")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
