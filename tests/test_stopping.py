"""Interrupting a build: SIGTERM stops the actions on worker threads, and they remove their partial files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")

# An action on a daemon thread (as doit -n 2 runs them) writing a cache object, checking for a
# stop as long steps do; the main thread waits, as doit's does, until a signal arrives.
SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from pathlib import Path
    import numpy as np
    from mixdown.actions import stopping
    from mixdown.store.cache import Cache

    for number in (signal.SIGTERM, signal.SIGHUP):  # as a terminal starts a build: a runner
        signal.signal(number, signal.SIG_DFL)  # may ignore SIGHUP (nohup), which install() respects
    stopping.install()
    cache, started = Cache(Path(sys.argv[1])), threading.Event()

    def work():
        with stopping.action():
            try:
                with cache.writer("ab" + "0" * 62, 48000, 2, frames=4800 * 2000) as writer:
                    for _ in range(2000):
                        writer.write(np.zeros((4800, 2), np.float32))
                        started.set()
                        stopping.check()
                        time.sleep(0.005)
                    writer.commit({"kind": "mix"})
            except stopping.Interrupted:
                print("worker: stopped", flush=True)

    threading.Thread(target=work, daemon=True).start()
    started.wait()
    os.kill(os.getpid(), getattr(signal, sys.argv[2]))
    while True:
        time.sleep(0.1)
    """
)


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_stops_the_workers_and_leaves_no_partial_file(tmp_path: Path, name: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), name], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "worker: stopped" in done.stdout
    assert f"mixdown: {name}: stopping" in done.stderr
    assert "no partial file was kept" in done.stderr and "Traceback" not in done.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # neither the object nor its .tmp


def test_a_signal_someone_else_handles_is_left_alone() -> None:
    script = textwrap.dedent(
        """
        import signal, sys
        from mixdown.actions import stopping
        mine = lambda number, frame: None
        signal.signal(signal.SIGTERM, mine)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        stopping.install()
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        stopping.install()  # twice: one hook
        assert not isinstance(sys.excepthook.hook, type(sys.excepthook))
        stopping.check()  # not stopping: nothing happens
        from mixdown.actions.progress import Progress
        progress = Progress("master:x", "mastered", 48000 * 3600, 48000)
        progress.show(48000)
        stopping._stop.set()  # as an interrupt leaving the main thread does
        for report in (lambda: progress.show(96000), lambda: progress.add(1), lambda: progress.say("x")):
            try:
                report()
            except stopping.Interrupted:
                continue
            raise AssertionError("a long step went on reporting progress after a stop")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
