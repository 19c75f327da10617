"""A fixed order for what the study hears, so that the same command and seed give the same
search whatever finishes first.

Two rules, used by the bridge when ``search.reproducible`` is on (the default):

- **Steps in trial-number order** (``StepOrder``): a trial's epoch-``e`` report reaches the
  study (and the pruner) only once every lower-numbered trial still training has reported
  epoch ``e``. Lower-numbered trials started no later, so the wait is short: a pack waits at
  most for a slower, older pack to reach the same epoch. The pruner compares with earlier trials
  only (``results/views.py``), so each decision sees the same history on every run.
- **Asks behind a fixed lag** (``AskGate``): with ``lag`` packs training at once, pack ``k`` is
  sampled seeing exactly the trials of packs ``0..k-lag``, and asked once those have ended. At
  ``lag`` 1 (one pack at a time) that is every earlier pack, as in a serial loop.

The sampler's random numbers are drawn in ask order, which both rules fix. What the rules do
not fix: packs differ between concurrency settings (``pack_size: auto`` evens packs over the
slots), so each ``max_concurrent_trials`` has its own reproducible search; a pack retried after
its node died may be released out of order after a two-minute wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.trial import FrozenTrial, TrialState


class StepOrder:
    """Holds epoch reports until their turn.

    Args:
        ordered: False releases every report at once (arrival order).
    """

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        self.live: set[int] = set()
        self.done: dict[int, int] = {}  # trial number -> last epoch released
        self.pending: dict[int, dict[int, Any]] = {}  # trial number -> epoch -> report

    def start(self, numbers: list[int]) -> None:
        """Trials of a new pack: they now hold back higher-numbered trials' reports."""
        for n in numbers:
            self.live.add(n)
            self.done.setdefault(n, 0)

    def add(self, number: int, epoch: int, report: Any) -> None:
        """A trial's report of ``epoch`` (a repeat of a released epoch, after a retried pack,
        is dropped)."""
        if number in self.live and epoch > self.done.get(number, 0):
            self.pending.setdefault(number, {})[epoch] = report

    def close(self, number: int) -> None:
        """A trial ended: it holds nobody back; what it had pending is dropped."""
        self.live.discard(number)
        self.pending.pop(number, None)

    def _turn(self, number: int, epoch: int) -> bool:
        return not self.ordered or all(self.done[n] >= epoch for n in self.live if n < number)

    def ready(self, force: set[int] | None = None) -> list[tuple[int, int, Any]]:
        """Reports whose turn has come, in the order to apply them: ``(number, epoch, report)``.
        ``force``: trials whose reports go now whatever their turn (their pack has ended)."""
        out: list[tuple[int, int, Any]] = []
        progress = True
        while progress:
            progress = False
            for number in sorted(self.pending):
                waiting = self.pending[number]
                epoch = min(waiting)
                if epoch == self.done[number] + 1 and (self._turn(number, epoch) or number in (force or ())):
                    out.append((number, epoch, waiting.pop(epoch)))
                    self.done[number] = epoch
                    if not waiting:
                        del self.pending[number]
                    progress = True
                    break  # a lower number may now be released first
        return out

    def decided(self, numbers: list[int], epoch: int) -> bool:
        """Whether every one of ``numbers`` still training has had ``epoch`` released."""
        return all(self.done.get(n, 0) >= epoch for n in numbers if n in self.live)


class AskGate:
    """When the next pack may be asked, and which trials its sampler sees.

    Args:
        lag: Packs that train at once (the sampler of pack ``k`` sees packs ``0..k-lag``), or
            None to ask at once with the whole study in view.
        first_number: The first trial number of this session; earlier trials (a resumed run's)
            are always seen.
    """

    def __init__(self, lag: int | None, first_number: int) -> None:
        if lag is not None and lag < 1:
            raise ValueError(f"lag must be >= 1 or None, got {lag}")
        self.lag = lag
        self.first_number = first_number
        self.packs: list[list[int]] = []

    def add(self, numbers: list[int]) -> None:
        self.packs.append(list(numbers))

    def _seen_packs(self) -> list[list[int]]:
        assert self.lag is not None
        return self.packs[: max(0, len(self.packs) - self.lag + 1)]

    def may_ask(self, closed: Callable[[int], bool]) -> bool:
        """Whether every pack the next one must see has ended."""
        if self.lag is None:
            return True
        return all(closed(n) for pack in self._seen_packs() for n in pack)

    def keep(self, extra: set[int]) -> Callable[[FrozenTrial], FrozenTrial | None] | None:
        """The view's filter for the next ask (None: the whole study); ``extra``: this session's
        trials asked but in no pack yet (a packer's waiting leader)."""
        if self.lag is None:
            return None
        seen = {n for pack in self._seen_packs() for n in pack} | extra
        in_packs = {n for pack in self.packs for n in pack}

        def keep(t: FrozenTrial) -> FrozenTrial | None:
            if t.state == TrialState.WAITING or t.number < self.first_number or t.number in seen:
                return t
            return None if t.number in in_packs else t  # a trial being asked now

        return keep
