"""One objective or several: the one place that knows the difference.

:func:`objectives_of` gives a run's :class:`Objectives` (``One`` or ``Several``). The bridge asks
it what to tell the study of a member after each epoch and at its end; the driver which routers
to keep while the run goes and how to say its progress; the end of a run, the export and the
report which trial a run exports, its front, its values and its curve. None of them branches on
how many objectives there are.

One objective: Optuna's own ``trial.report`` and ``trial.should_prune`` with the study's
pruner. Several: Optuna refuses both on such a study, so each epoch's objective vector is
recorded as a user attribute (``dominance.py``) and the study's pruner (a
:class:`~search.study.dominance.DominancePruner`, grouped) is asked directly.

A member's vector at a step is the metrics of its best epoch so far by the primary objective
(``SearchSpec.primary``): the router it would leave if it stopped there, so every value of a
vector belongs to one router (its val_cost at the epoch its val_route_acc was best, not the
lowest val_cost of any epoch). The final values are that vector at its best epoch.

A run with several objectives exports one point of its front, picked by a stated rule
(:data:`PICK_RULE`, ``metrics.pareto.pick``): each objective scaled over the front to 0 (the
front's worst) .. 1 (its best), weighted (1 each unless ``--pick`` says otherwise; an objective
``--pick`` leaves out weighs 0), summed; the highest sum wins, ties go to the better first
objective, then to the lower trial number.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.metrics.direction import Direction
from search.metrics.pareto import front, pick
from search.space.search_spec import SearchSpec
from search.study.dominance import curve, record
from search.study.keepers import FrontKeeper, Keeper, RouterKeeper
from search.study.optuna_internals import storage_of, trial_id

PICK_RULE = (
    "highest weighted sum of the objectives, each scaled over the front to 0 (its worst) .. 1 "
    "(its best); ties to the better first objective, then the lower trial number"
)


def pick_weights(objectives: Sequence[str], weights: Mapping[str, float] | None) -> list[float]:
    """One weight per objective: ``weights``' (0 for one it leaves out), or 1 each."""
    if weights is None:
        return [1.0] * len(objectives)
    return [float(weights.get(name, 0.0)) for name in objectives]


class Objectives(ABC):
    """The study's objectives, and what differs between one and several.

    Args:
        study: The run's study (with as many directions as ``search`` has objectives).
        search: The space's search block: its objectives, their directions, the primary one.
    """

    # What a run's outputs say of the trial it exports: its "best" or the "picked" front point.
    word: str
    # Why a run builds no ensemble, or None when it builds one.
    no_ensemble: str | None
    # Whether each model type's best trial is exported beside the best (one objective).
    per_family: bool
    # Whether the routing table recommends a router (one objective; a front is a choice).
    recommends: bool

    def __init__(self, study: optuna.Study, search: SearchSpec) -> None:
        if len(study.directions) != len(search.objectives):
            raise ValueError(
                f"the study has {len(study.directions)} objective(s), the space {len(search.objectives)}"
            )
        self.study = study
        self.names = search.objectives
        self.primary = search.primary
        self.primary_index = search.primary_index
        self.direction = Direction(search.direction)
        self.modes = list(search.directions)

    # -- a member's metrics, as the bridge tells them -----------------------------------------
    def better(self, metrics: Mapping[str, float], chosen: Mapping[str, float]) -> bool:
        """Whether an epoch's ``metrics`` beat the best epoch so far (``chosen``) by the primary
        objective (as the trainer keeps its best epoch: strictly better, the first one wins)."""
        value = metrics.get(self.primary)
        if value is None or not math.isfinite(value):
            return False
        return self.primary not in chosen or self.direction.better(value, chosen[self.primary])

    def vector(self, chosen: Mapping[str, float]) -> list[float] | None:
        """The values of the objectives in ``chosen``, in order; None when one is missing or not
        finite."""
        return None if self.missing(chosen) is not None else [float(chosen[n]) for n in self.names]

    def missing(self, chosen: Mapping[str, float]) -> str | None:
        """The first objective without a finite value in ``chosen``, or None."""
        for n in self.names:
            v = chosen.get(n)
            if v is None or not math.isfinite(v):
                return n
        return None

    @abstractmethod
    def report(
        self,
        trial: optuna.trial.Trial,
        step: int,
        chosen: Mapping[str, float],
        vectors: dict[str, list[float]],
    ) -> bool:
        """Tell the study the member's values at ``step``; returns whether it is pruned there.
        ``vectors`` is the member's own record of its vectors by step (extended here)."""

    @abstractmethod
    def final(self, chosen: Mapping[str, float]) -> float | list[float] | None:
        """What ``study.tell`` takes for a COMPLETE member: its value, or its vector."""

    # -- the study's trials, as the run's outputs show them -----------------------------------
    def value(self, trial: FrozenTrial) -> float | None:
        """A trial's value of the primary objective."""
        return None if trial.values is None else float(trial.values[self.primary_index])

    @abstractmethod
    def curve(self, trial: FrozenTrial) -> dict[int, float]:
        """A trial's best-so-far value of the primary objective at each epoch it reported."""

    @abstractmethod
    def front(self) -> list[FrozenTrial]:
        """The COMPLETE trials no other COMPLETE trial dominates, in trial order (several
        objectives); none with one."""

    @abstractmethod
    def exported(self, weights: Mapping[str, float] | None = None) -> FrozenTrial:
        """The trial the run exports (the study has a COMPLETE trial): the best, or the front
        point ``weights`` pick (1 each when None)."""

    @abstractmethod
    def progress(self) -> str:
        """The state of the search in a few words, for a line per finished trial."""

    @abstractmethod
    def summary(self, trial: FrozenTrial) -> str:
        """The exported ``trial`` in one line of the report."""

    @abstractmethod
    def keeper(self, storage: str, keep: int, group_of: Callable[[FrozenTrial], str]) -> Keeper:
        """What keeps trial routers while the run goes (the completed trials already kept):
        each group's best ``keep`` (one objective), or the front."""

    def values(self, trial: FrozenTrial) -> dict[str, float | None]:
        """Each objective's value of ``trial``, by name."""
        values = trial.values
        return {n: (float(values[i]) if values is not None else None) for i, n in enumerate(self.names)}

    def importance_target(self) -> Callable[[FrozenTrial], float] | None:
        """What parameter importances are of: the study's value (None), or the primary one."""
        return None

    def columns(self, trial: FrozenTrial, front: set[int]) -> dict[str, Any]:
        """A trial's row in results.parquet beyond its value: each objective's value and whether
        it is on the ``front`` (several objectives); nothing more with one."""
        return {}

    def result(self, trial: FrozenTrial) -> dict[str, Any]:
        """What config.json's ``search_result`` says beyond the exported trial's value: each
        objective's (several); nothing more with one."""
        return {}

    def _complete(self) -> list[FrozenTrial]:
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [t for t in done if t.values is not None]


class One(Objectives):
    """A search over one metric."""

    word = "best"
    no_ensemble = None
    per_family = True
    recommends = True

    def report(
        self,
        trial: optuna.trial.Trial,
        step: int,
        chosen: Mapping[str, float],
        vectors: dict[str, list[float]],
    ) -> bool:
        value = chosen.get(self.primary)
        if value is None:
            return False  # no finite value: the trainable fails it
        trial.report(value, step=step)
        return trial.should_prune()

    def final(self, chosen: Mapping[str, float]) -> float | list[float] | None:
        return chosen.get(self.primary)

    def curve(self, trial: FrozenTrial) -> dict[int, float]:
        return dict(trial.intermediate_values)

    def front(self) -> list[FrozenTrial]:
        return []

    def exported(self, weights: Mapping[str, float] | None = None) -> FrozenTrial:
        return self.study.best_trial

    def progress(self) -> str:
        done = any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False))
        return "best " + (f"{self.study.best_value:.4f}" if done else "-")

    def summary(self, trial: FrozenTrial) -> str:
        return f"best: trial {trial.number}, {self.primary} = {trial.value:.4f}"

    def keeper(self, storage: str, keep: int, group_of: Callable[[FrozenTrial], str]) -> Keeper:
        # the best trial overall is the best of its group: keeping each group's best keeps it
        done = [(t.number, float(t.values[0]), group_of(t)) for t in self._complete()]
        return RouterKeeper(storage, keep, self.direction, done, group_of)


class Several(Objectives):
    """A search over several metrics: a front, one point of it exported."""

    word = "picked"
    # an ensemble's size and latency are its members' summed: it is off every front
    no_ensemble = "a search over several objectives exports its front instead"
    per_family = False
    recommends = False

    def report(
        self,
        trial: optuna.trial.Trial,
        step: int,
        chosen: Mapping[str, float],
        vectors: dict[str, list[float]],
    ) -> bool:
        vector = self.vector(chosen)
        if vector is None:
            return False
        vectors[str(step)] = vector
        record(self.study, trial_id(trial), vectors)
        stored = storage_of(self.study).get_trial(trial_id(trial))  # as the pruner reads it
        return bool(self.study.pruner.prune(self.study, stored))

    def final(self, chosen: Mapping[str, float]) -> float | list[float] | None:
        return self.vector(chosen)

    def curve(self, trial: FrozenTrial) -> dict[int, float]:
        return curve(trial, self.primary_index)

    def front(self) -> list[FrozenTrial]:
        done = self._complete()
        return [done[i] for i in front([t.values for t in done], Direction.each_of_study(self.study))]

    def exported(self, weights: Mapping[str, float] | None = None) -> FrozenTrial:
        points = self.front()
        chosen = pick([t.values for t in points], Direction.each_of_study(self.study), self.weights(weights))
        return points[chosen]

    def weights(self, weights: Mapping[str, float] | None) -> list[float]:
        """One weight per objective (see :func:`pick_weights`)."""
        return pick_weights(self.names, weights)

    def progress(self) -> str:
        done = any(t.state == TrialState.COMPLETE for t in self.study.get_trials(deepcopy=False))
        return f"front {len(self.study.best_trials) if done else 0}"

    def summary(self, trial: FrozenTrial) -> str:
        values = ", ".join(f"{m} = {v:.4g}" for m, v in zip(self.names, trial.values))
        return f"picked from the Pareto front of {len(self.front())}: trial {trial.number}, {values}"

    def keeper(self, storage: str, keep: int, group_of: Callable[[FrozenTrial], str]) -> Keeper:
        done = [(t.number, t.values) for t in self._complete()]
        return FrontKeeper(storage, Direction.each_of_study(self.study), done)

    def importance_target(self) -> Callable[[FrozenTrial], float] | None:
        index = self.primary_index
        return lambda t: t.values[index]

    def columns(self, trial: FrozenTrial, front: set[int]) -> dict[str, Any]:
        values = {f"value_{name}": v for name, v in self.values(trial).items()}
        return {**values, "pareto": trial.number in front}

    def result(self, trial: FrozenTrial) -> dict[str, Any]:
        values = self.values(trial)
        return {
            "objectives": [
                {"metric": m, "mode": d, "value": values[m]} for m, d in zip(self.names, self.modes)
            ]
        }


def objectives_of(study: optuna.Study, search: SearchSpec) -> Objectives:
    """The run's objectives: :class:`One` or :class:`Several`, as its search block says."""
    return Several(study, search) if search.multi else One(study, search)
