"""Speed and time left of a grid being computed, for the progress bars of the GUI and the CLI."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Eta:
    done: int  # grid points evaluated
    total: int
    rate: float  # points per second (nan before the first row)
    left: float  # seconds left for the grid (nan before the first row)

    def text(self) -> str:
        """'12.3 points/s, about 1 min 05 s left' (empty before a rate is known)."""
        if not math.isfinite(self.rate) or self.rate <= 0:
            return ""
        if self.done >= self.total:
            return f"{_rate(self.rate)} points/s"
        return f"{_rate(self.rate)} points/s, about {duration(self.left)} left"


class GridClock:
    """Measures points per second from the first ``start()``; rows arrive with ``tick``."""

    def __init__(self, total: int, clock: Callable[[], float] = time.perf_counter) -> None:
        if total <= 0:
            raise ValueError(f"Invalid total: {total!r} (must be > 0)")
        self.total = total
        self._clock = clock
        self._t0 = clock()

    def start(self) -> None:
        """The grid starts now (after loading and any compiling, which are not its speed)."""
        self._t0 = self._clock()

    def tick(self, done: int) -> Eta:
        elapsed = self._clock() - self._t0
        if done <= 0 or elapsed <= 0:
            return Eta(done, self.total, math.nan, math.nan)
        rate = done / elapsed
        return Eta(done, self.total, rate, max(0.0, (self.total - done) / rate))


def duration(seconds: float) -> str:
    """A short human duration: '8 s', '2 min 05 s', '1 h 03 min'."""
    if not math.isfinite(seconds):
        return "?"
    s = round(seconds)
    if s < 1:
        return "< 1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.3g}"


__all__ = ["Eta", "GridClock", "duration"]
