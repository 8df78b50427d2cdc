"""A progress display for batches on stderr: studies done, failed, rate and time left.

On a terminal one line is redrawn in place (at most ``tty_interval_s`` apart); elsewhere (a
log file, a pipe, CI) plain lines are printed at most ``plain_interval_s`` apart, plus a
final line. Times come from an injectable monotonic clock so tests can drive it. The line
never names a patient: counts and rates only.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

_BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (or ``M:SS`` under an hour) of a non-negative duration in seconds."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts of a batch of ``total`` studies, drawn on ``stream``.

    ``update(status)`` records one finished study: ``status`` is "ok", "failed" or
    "unchanged" (outputs reused from an earlier run). Call :meth:`clear` before writing
    another line to the same terminal and :meth:`close` at the end.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        tty_interval_s: float = 0.1,
        plain_interval_s: float = 10.0,
    ) -> None:
        if total < 0:
            raise ValueError(f"total {total}: expected a number of studies >= 0")
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty and isatty())
        self.tty = tty
        self._clock = clock
        self._interval_s = tty_interval_s if tty else plain_interval_s
        self._start = clock()
        self._last_draw: float | None = None
        self._drawn = False
        self.ok = 0
        self.failed = 0
        self.unchanged = 0

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.unchanged

    def rate_per_minute(self) -> float | None:
        """Studies finished per minute so far (None before the first or at time zero)."""
        elapsed = self._clock() - self._start
        if self.done == 0 or elapsed <= 0:
            return None
        return self.done / elapsed * 60.0

    def seconds_left(self) -> float | None:
        """Estimated seconds to finish at the rate so far (None while unknown)."""
        rate = self.rate_per_minute()
        if rate is None or rate <= 0:
            return None
        return (self.total - self.done) / rate * 60.0

    def line(self) -> str:
        """The progress text: bar, counts, rate and time left."""
        fraction = self.done / self.total if self.total else 1.0
        filled = round(fraction * _BAR_WIDTH)
        bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
        rate = self.rate_per_minute()
        left = self.seconds_left()
        elapsed = self._clock() - self._start
        parts = [
            f"[{bar}] {self.done}/{self.total} studies",
            f"ok {self.ok}",
            f"failed {self.failed}",
        ]
        if self.unchanged:
            parts.append(f"unchanged {self.unchanged}")
        parts.append("rate -" if rate is None else f"{rate:.1f}/min")
        if self.done < self.total:
            parts.append("left -" if left is None else f"left {format_duration(left)}")
        parts.append(f"elapsed {format_duration(elapsed)}")
        return "  ".join(parts)

    def update(self, status: str) -> None:
        """Count one finished study and redraw when due."""
        if status == "ok":
            self.ok += 1
        elif status == "failed":
            self.failed += 1
        elif status == "unchanged":
            self.unchanged += 1
        else:
            raise ValueError(f"status {status!r}: expected 'ok', 'failed' or 'unchanged'")
        now = self._clock()
        due = self._last_draw is None or now - self._last_draw >= self._interval_s
        if due or (self.tty and not self._drawn):
            self._draw()
            self._last_draw = now

    def clear(self) -> None:
        """Erase the terminal line (no-op for plain output) before another line is written."""
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def redraw(self) -> None:
        """Draw the terminal line again after :meth:`clear` (plain output: nothing)."""
        if self.tty:
            self._draw()

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._draw()
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _draw(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line())
            self._drawn = True
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()
