"""The trial routers a run keeps on storage while it goes: what ensemble selection (one
objective) or the front (several) may need at the end; any other router is deleted as soon as
it falls out. Both keepers take a completed trial the same way (:meth:`Keeper.take`), and
:meth:`search.study.objectives.Objectives.keeper` says which one a run has.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from optuna.trial import FrozenTrial

from search.files.remote import delete
from search.files.rundir import trial_router_uri
from search.metrics.direction import Direction
from search.metrics.pareto import front


class Keeper(Protocol):
    """Keeps trial routers on storage while a run goes."""

    def take(self, trial: FrozenTrial) -> None:
        """A trial completed: keep its router, and delete any that falls out."""

    @property
    def numbers(self) -> list[int]:
        """The trials whose routers are kept."""


class RouterKeeper:
    """Keeps the routers of the best ``keep`` completed trials of each group (a model type:
    stacking selects among every family) on storage while the run goes; a router that falls
    out of its group's best is deleted at once.

    Args:
        storage: Where trial routers are saved.
        keep: How many to keep per group, >= 1.
        direction: Which trial values are better.
        kept: Trials (number, value, group) whose routers are already kept (a resumed run).
        group_of: A completed trial's group (its model type), for :meth:`take`.
    """

    def __init__(
        self,
        storage: str,
        keep: int,
        direction: Direction,
        kept: Sequence[tuple[int, float, str]] = (),
        group_of: Callable[[FrozenTrial], str] = lambda t: "",
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.storage = storage
        self.keep = keep
        self.direction = direction
        self.kept: dict[int, float] = {}
        self.group: dict[int, str] = {}
        self.group_of = group_of
        for number, value, group in kept:
            self.add(number, value, group)

    def take(self, trial: FrozenTrial) -> None:
        """A trial completed: keep its router if it is among its group's best."""
        self.add(trial.number, float(trial.values[0]), self.group_of(trial))

    def add(self, number: int, value: float, group: str = "") -> None:
        """A trial of ``group`` completed with ``value``: keep its router if it is among its
        group's best."""
        self.kept[number] = value
        self.group[number] = group
        mine = [n for n in self.kept if self.group[n] == group]
        while len(mine) > self.keep:
            worst = max(mine, key=lambda n: (self.direction.key(self.kept[n]), n))
            mine.remove(worst)
            del self.kept[worst]
            del self.group[worst]
            delete(trial_router_uri(self.storage, worst))

    @property
    def numbers(self) -> list[int]:
        """Kept trials, best first."""
        return sorted(self.kept, key=lambda n: (self.direction.key(self.kept[n]), n))


class FrontKeeper:
    """Keeps the routers of the front of the completed trials on storage while the run goes; a
    router whose trial a newer one dominates is deleted at once.

    Args:
        storage: Where trial routers are saved.
        directions: One per objective.
        kept: Trials (number, values) whose routers are already kept (a resumed run).
    """

    def __init__(
        self, storage: str, directions: Sequence[Direction], kept: Sequence[tuple[int, Sequence[float]]] = ()
    ) -> None:
        if not directions:
            raise ValueError("need at least one direction")
        self.storage = storage
        self.directions = list(directions)
        self.kept: dict[int, list[float]] = {}
        for number, values in kept:
            self.add(number, values)

    def take(self, trial: FrozenTrial) -> None:
        """A trial completed: keep its router while no other kept one dominates it."""
        self.add(trial.number, list(trial.values))

    def add(self, number: int, values: Sequence[float]) -> None:
        """A trial completed with ``values``: keep its router while no other kept one dominates it."""
        if len(values) != len(self.directions):
            raise ValueError(f"need {len(self.directions)} values, got {list(values)}")
        self.kept[number] = [float(v) for v in values]
        numbers = list(self.kept)
        on = {numbers[i] for i in front([self.kept[n] for n in numbers], self.directions)}
        for n in numbers:
            if n not in on:
                del self.kept[n]
                delete(trial_router_uri(self.storage, n))

    @property
    def numbers(self) -> list[int]:
        """Kept trials, in trial order."""
        return sorted(self.kept)
