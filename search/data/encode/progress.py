"""Progress a person sees where there is no terminal (a log file, a CI job, a notebook's
captured output): one line every few seconds with what is done of the total, the rate and the
time left. On a terminal the encoder draws its own bar instead.

Who calls what: ``Encoder.encode`` makes a :class:`Progress` and calls :meth:`Progress.update`
after each chunk of texts; the line goes to the library's logger (standard error).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from search.log import TO_STDERR, logger

EVERY_S = 5.0  # seconds between two lines, at least
log = logger("data")


def duration(seconds: float) -> str:
    """``42 s``, ``7 min 26 s``, ``1 h 03 min``: a time a person reads at a glance."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


class Progress:
    """Lines ``embedding: 3,200 of 12,032 texts (27%), 19.8 texts/s, about 7 min 26 s left``.

    Args:
        total: How many items in all, >= 0.
        what: The work, as the line starts (``embedding``). unit: The items (``texts``).
        every_s: Seconds between two lines, at least (the last one is always said); default
            :data:`EVERY_S`.
        clock: Seconds, monotonic (a test passes its own).
    """

    def __init__(
        self,
        total: int,
        what: str = "embedding",
        unit: str = "texts",
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        every_s = EVERY_S if every_s is None else every_s
        if total < 0 or every_s < 0:
            raise ValueError(f"need total >= 0 and every_s >= 0, got {total} and {every_s}")
        self.total, self.what, self.unit, self.every_s, self.clock = total, what, unit, every_s, clock
        self.start = self.last = clock()
        self.lines: list[str] = []  # what was said, in order

    def line(self, done: int) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = done / elapsed
        share = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        if done >= self.total:
            tail = f"done in {duration(elapsed)}"
        elif done:
            tail = f"about {duration((self.total - done) / rate)} left"
        else:
            tail = "starting"
        return f"{self.what}: {done:,} of {self.total:,} {self.unit}{share}, {rate:.1f} {self.unit}/s, {tail}"

    def update(self, done: int) -> None:
        """Say where the work stands when ``every_s`` passed since the last line, or it is done."""
        now = self.clock()
        if done < self.total and now - self.last < self.every_s:
            return
        self.last = now
        text = self.line(done)
        self.lines.append(text)
        log.info(text, extra=TO_STDERR)
