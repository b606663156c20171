"""How far a long action has got: :class:`Progress` prints it at most every 10 %.

Used by the mix and master actions for programmes over ten minutes; each
report is also where a stopping build stops (:mod:`mixdown.actions.stopping`).
"""

from __future__ import annotations

import threading

__all__ = ["Progress", "clock", "positions"]


_guard = threading.Lock()
_positions: dict[str, str] = {}  # the long steps under way: target -> how far


def positions() -> dict[str, str]:
    """How far each long mix or master under way is (``"mastering 0:12:00 of 1:30:00"``), by target."""
    with _guard:
        return dict(_positions)


class Progress:
    """Prints how far a long step has got (programmes over ten minutes), at most every 10 %."""

    def __init__(self, target: str, verb: str, frames: int, sr: int) -> None:
        self.target, self.verb, self.frames, self.sr = target, verb, frames, sr
        self.long = frames > 600 * sr
        self._next = 0.1
        self._done = 0
        self._lock = threading.Lock()

    def show(self, done: int) -> None:
        """Report ``done`` frames done; raise :class:`~mixdown.actions.stopping.Interrupted` if the build
        is stopping, so that long steps stop where they report."""
        from .stopping import check

        check()
        with self._lock:
            if self.long:
                where = f"{self.verb} {clock(done / self.sr)} of {clock(self.frames / self.sr)}"
                with _guard:  # for the console's progress line (mixdown.actions.console)
                    if done >= self.frames:
                        _positions.pop(self.target, None)
                    else:
                        _positions[self.target] = where
            if self.long and done >= self._next * self.frames:
                print(f"{self.target}  {self.verb} {clock(done / self.sr)} of {clock(self.frames / self.sr)}")
                while self._next <= done / self.frames:
                    self._next += 0.1

    def add(self, frames: int) -> None:
        """Count ``frames`` more done (from any thread)."""
        with self._lock:
            self._done += frames
            done = self._done
        self.show(done)

    def say(self, text: str) -> None:
        """Print ``text`` for a long step (stopping here if the build is stopping)."""
        from .stopping import check

        check()
        if self.long:
            print(f"{self.target}  {text}")


def clock(seconds: float) -> str:
    """``seconds`` as ``H:MM:SS``, always with hours (progress lines of long programmes line up).

    Not :mod:`mixdown.show.stanza`'s marker format, which writes ``1:30`` as a user would.
    """
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
