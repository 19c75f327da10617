"""A fixed view of the study for each pack, so that the same command and seed give the same
search whatever finishes first. Used by the bridge when ``search.reproducible`` is on (the
default).

With ``lag`` packs training at once, pack ``k`` sees exactly the trials of packs ``0..k-lag``
(and those of a resumed run's earlier sessions), all ended when it starts:

- its sampler draws from that history, asked once those packs have ended (at ``lag`` 1, one
  pack at a time, that is every earlier pack, as in a serial loop);
- its pruner judges each member against that history and the lower-numbered members of its
  own pack (which report each epoch together), never against a pack that happens to be
  training beside it. No pack ever waits for another's epoch.

The sampler's random numbers are drawn in ask order, which the rule fixes too. What it does not
fix: packs differ between concurrency settings (``pack_size: auto`` evens packs over the
slots), so each ``max_concurrent_trials`` has its own reproducible search; a resumed run, or a
pack retried after its node died, may differ. The cost: a slot may idle while the pack ``lag``
back is still training (``bench/reproducible.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Callable

from optuna.trial import FrozenTrial, TrialState


class AskGate:
    """When the next pack may be asked, and which trials each pack sees.

    Args:
        lag: Packs that train at once, or None to ask at once with the whole study in view.
        first_number: The first trial number of this session; earlier trials (a resumed run's)
            are always seen.
    """

    def __init__(self, lag: int | None, first_number: int) -> None:
        if lag is not None and lag < 1:
            raise ValueError(f"lag must be >= 1 or None, got {lag}")
        self.lag = lag
        self.first_number = first_number
        self.packs: dict[int, list[int]] = {}  # leader -> members, in the order asked

    def _seen(self, index: int) -> set[int]:
        """The trials pack ``index`` sees: those of packs ``0..index-lag``."""
        assert self.lag is not None
        return {n for pack in list(self.packs.values())[: max(0, index - self.lag + 1)] for n in pack}

    def _next_seen(self) -> set[int]:
        return self._seen(len(self.packs))

    def may_ask(self, ended: Callable[[int], bool]) -> bool:
        """Whether every trial the next pack must see has ended."""
        return self.lag is None or all(ended(n) for n in self._next_seen())

    def keep(self, extra: set[int]) -> Callable[[FrozenTrial], FrozenTrial | None] | None:
        """The sampler's filter for the next ask (None: the whole study); ``extra``: this
        session's trials asked but in no pack yet (a packer's waiting leader)."""
        if self.lag is None:
            return None
        seen = self._next_seen() | extra
        in_packs = {n for pack in self.packs.values() for n in pack}

        def keep(t: FrozenTrial) -> FrozenTrial | None:
            if t.state == TrialState.WAITING or t.number < self.first_number or t.number in seen:
                return t
            return None if t.number in in_packs else t  # a trial being asked now

        return keep

    def add(self, numbers: list[int]) -> None:
        """A pack was asked (its leader first): it sees what its sampler saw."""
        self.packs[numbers[0]] = list(numbers)

    def scope(self, trial: FrozenTrial) -> Callable[[int], bool] | None:
        """The trials ``trial``'s pruner may compare it with (by number), or None for all:
        what its pack sees, and its pack's lower-numbered members."""
        if self.lag is None:
            return None
        leader = trial.user_attrs.get("pack", trial.number)
        known = leader in self.packs
        seen = self._seen(list(self.packs).index(leader)) if known else set()
        own = {n for n in self.packs[leader] if n < trial.number} if known else set()
        first = self.first_number

        def visible(number: int) -> bool:
            return number < first or number in seen or number in own

        return visible
