"""A small progress bar for stderr (no dependency); drawn only when it helps."""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is only for type checkers (start-up time)
if TYPE_CHECKING:
    from typing import TextIO

# Fewer files than this finish before a bar would be worth looking at.
MIN_FILES = 4
_REDRAW_SECONDS = 0.1
_WIDTH = 30


class ProgressBar:
    """``progress(done, total)`` callback drawing ``[#####.....] 12/50 files`` on a TTY.

    Use :meth:`for_stream`, which returns a bar that draws nothing when ``stream`` is not a
    terminal. Call :meth:`close` at the end to erase the line.
    """

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._drawn = False
        self._last = 0.0
        self._start = time.monotonic()

    @classmethod
    def for_stream(cls, stream: TextIO) -> ProgressBar:
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream, enabled=tty)

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled or total < MIN_FILES:
            return
        now = time.monotonic()
        if done < total and now - self._last < _REDRAW_SECONDS:
            return
        self._last = now
        self._stream.write("\r" + render_bar(done, total, now - self._start))
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._drawn = False


def render_bar(done: int, total: int, elapsed: float) -> str:
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    filled = round(frac * _WIDTH)
    bar = "#" * filled + "." * (_WIDTH - filled)
    return f"scanning [{bar}] {done}/{total} files  {elapsed:.1f}s"
