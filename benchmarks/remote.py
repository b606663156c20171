"""A 2,000-line show against a shared remote cache on moto's S3, against copying the same objects.

Generates ``noop.py``'s show (short lines from a stub renderer in the show's
own renderers/, ten scripts) with ``[cache] share = "all"``, starts moto's
S3 server on 127.0.0.1 in a process of its own, points s3fs at it
(``FSSPEC_S3_ENDPOINT_URL``, dummy AWS keys) and sets
``MIXDOWN_REMOTE=s3://BUCKET/cache``. Then:

* builds the show once (every render uploaded as it is made: write-through);
* (a) a warm build of a fresh clone (the show's files, no cache/, no
  .mixdown/, no build/): everything comes from the remote, timed; against
  (b) the baseline in the same run: copying the same objects (every file
  under ``objects/`` on the remote: each key's ``.wav`` and ``.json``, and
  the side files of mixes) with one parallel fsspec ``get``, as ``aws s3
  sync`` would, also in a fresh process; target (a)/(b) at most 1.5;
* (c) a no-op build of that clone with the remote configured against the
  same without it (``MIXDOWN_REMOTE`` unset), in alternating rounds;
  target at most 1.2.

Both sides of each ratio run as processes of their own while the server
runs in a third, as a real S3 would be another machine. Prints the figures and the
ratios with PASS or MISS. Exits 0 whatever the
figures; non-zero only if something fails (a build, the server, or a warm
build that renders anything).

Usage: ``python benchmarks/remote.py [--lines N] [--rounds N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from longshow import Run, doit, measured, verdict, workdir
from noop import byte_compile, make_show

WARM_TARGET = 1.5  # warm build of a fresh clone / parallel fsspec get of the same objects, at most
NOOP_TARGET = 1.2  # no-op build with the remote / without it, at most
BUCKET = "mixdown-bench"

SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""

# the baseline: every object file under the remote's objects/ in one parallel get, like `aws s3 sync`
SYNC = """
import sys
import fsspec
fs, root = fsspec.core.url_to_fs(sys.argv[1])
found = fs.find(root + "/objects")
local = [sys.argv[2] + "/" + path[len(root) + 1 :] for path in found]
fs.get(found, local)
print(len(found))
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[str], str]:
    """moto's S3 in a process of its own (not competing with the client for this one's GIL)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("moto's server did not start (pip install 'moto[server]')")
    return proc, f"http://127.0.0.1:{port}"


def point_at(endpoint: str) -> str:
    """Point s3fs (in this process and in every child) at ``endpoint``; make the bucket; its cache URL."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "FSSPEC_S3", "MIXDOWN_")):
            del os.environ[name]
    os.environ.update(
        FSSPEC_S3_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="benchmark",
        AWS_SECRET_ACCESS_KEY="benchmark",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import fsspec

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    return f"s3://{BUCKET}/cache"


def clone(show: Path, into: Path) -> Path:
    """The show's own files (what git holds) in a new directory: no cache/, .mixdown/ or build/."""
    if into.exists():
        shutil.rmtree(into)
    ignored = shutil.ignore_patterns("cache", ".mixdown", "build", "__pycache__", ".doit*")
    shutil.copytree(show, into, ignore=ignored)
    return into


def remote_objects(url: str) -> tuple[int, int]:
    """Files and bytes under the remote's objects/."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(url, skip_instance_cache=True)
    sizes = fs.du(f"{root}/objects", total=False)
    return len(sizes), sum(sizes.values())


def rendered(run: Run) -> list[str]:
    """The render targets a build ran (doit prints ``.  voice:…`` for each task it ran)."""
    return [
        line[3:] for line in run.stdout.splitlines() if line.startswith((".  voice:", ".  sfx:", ".  music:"))
    ]


def noop_rounds(show: Path, url: str, rounds: int) -> tuple[list[float], list[float]]:
    """No-op builds of ``show``, alternating with and without the remote."""
    with_remote: list[float] = []
    without: list[float] = []
    for _ in range(rounds):
        os.environ["MIXDOWN_REMOTE"] = url
        with_remote.append(doit(show).seconds)
        del os.environ["MIXDOWN_REMOTE"]
        without.append(doit(show).seconds)
    return with_remote, without


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="no-op builds of each kind")
    parser.add_argument("--keep", type=Path, help="work in DIR (emptied first) and leave it there")
    args = parser.parse_args()
    work = workdir(args.keep, "mixdown-remote-")
    byte_compile()
    server, endpoint = start_server()
    try:
        url = point_at(endpoint)
        author = work / "author"
        author.mkdir()
        make_show(author, args.lines)
        with (author / "project.toml").open("a") as fh:
            fh.write('\n[cache]\nshare = "all"\n')
        os.environ["MIXDOWN_REMOTE"] = url
        first = doit(author, "-n", "2", "-P", "thread")
        files, size = remote_objects(url)
        fresh = clone(author, work / "clone")
        warm = doit(fresh, "-n", "2", "-P", "thread")
        again = rendered(warm)
        if again:
            raise SystemExit(f"FAILED: the warm build rendered {len(again)} assets, e.g. {again[0]}")
        target = work / "sync"
        sync = measured([sys.executable, "-c", SYNC, url, str(target)])
        if sync.code != 0:
            raise SystemExit(f"FAILED: the baseline's fsspec get ({sync.code}):\n{sync.stderr[-2000:]}")
        copied = sum(1 for p in target.rglob("*") if p.is_file())
        with_remote, without = noop_rounds(fresh, url, args.rounds)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    noop_with, noop_without = statistics.median(with_remote), statistics.median(without)
    warm_ratio, noop_ratio = warm.seconds / sync.seconds, noop_with / noop_without
    print(f'show: {args.lines} voice lines (noop.py\'s), [cache] share = "all", moto S3 on 127.0.0.1')
    print(
        f"first build, uploading        {first.seconds:8.2f} s   remote: {files} files, {size / 2**20:.1f} MiB"
    )
    print(f"(a) warm build, fresh clone   {warm.seconds:8.2f} s   nothing rendered")
    print(f"(b) one parallel fsspec get   {sync.seconds:8.2f} s   {copied} files copied")
    print(
        f"    ratio (a)/(b)             {warm_ratio:8.2f}x  target <= {WARM_TARGET}: {verdict(warm_ratio <= WARM_TARGET)}"
    )
    print(f"(c) no-op with the remote     {noop_with:8.3f} s   median of {args.rounds}: {fmt(with_remote)}")
    print(f"    no-op without it          {noop_without:8.3f} s   median of {args.rounds}: {fmt(without)}")
    print(
        f"    ratio                     {noop_ratio:8.2f}x  target <= {NOOP_TARGET}: {verdict(noop_ratio <= NOOP_TARGET)}"
    )


def fmt(times: list[float]) -> str:
    """Round times, for the report."""
    return " ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"benchmark took {time.perf_counter() - started:.0f} s")
