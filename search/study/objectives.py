"""What the bridge tells the study of a member: its value(s) after each epoch, whether it is
pruned there, and its final value(s).

One objective: Optuna's own ``trial.report`` and ``trial.should_prune`` with the study's
pruner. Several: Optuna refuses both on such a study, so each epoch's objective vector is
recorded as a user attribute (``results/dominance.py``) and the study's pruner (a
:class:`~search.study.dominance.DominancePruner`, grouped) is asked directly.

A member's vector at a step is the metrics of its best epoch so far by the primary objective
(``SearchSpec.primary``): the router it would leave if it stopped there, so every value of a
vector belongs to one router (its val_cost at the epoch its val_route_acc was best, not the
lowest val_cost of any epoch). The final values are that vector at its best epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import optuna

from search.metrics.direction import Direction
from search.space.search_spec import SearchSpec
from search.study.dominance import record
from search.study.optuna_internals import storage_of, trial_id


class Objectives:
    """The study's objectives, and how a member's metrics become its values.

    Args:
        study: The run's study (with as many directions as ``search`` has objectives).
        search: The space's search block: its objectives, their directions, the primary one.
    """

    def __init__(self, study: optuna.Study, search: SearchSpec) -> None:
        if len(study.directions) != len(search.objectives):
            raise ValueError(
                f"the study has {len(study.directions)} objective(s), the space {len(search.objectives)}"
            )
        self.study = study
        self.names = search.objectives
        self.primary = search.primary
        self.multi = search.multi
        self.direction = Direction(search.direction)

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

    def report(
        self,
        trial: optuna.trial.Trial,
        step: int,
        chosen: Mapping[str, float],
        vectors: dict[str, list[float]],
    ) -> bool:
        """Tell the study the member's values at ``step``; returns whether it is pruned there.
        ``vectors`` is the member's own record of its vectors by step (extended here)."""
        if not self.multi:
            value = chosen.get(self.primary)
            if value is None:
                return False  # no finite value: the trainable fails it
            trial.report(value, step=step)
            return trial.should_prune()
        vector = self.vector(chosen)
        if vector is None:
            return False
        vectors[str(step)] = vector
        record(self.study, trial_id(trial), vectors)
        stored = storage_of(self.study).get_trial(trial_id(trial))  # as the pruner reads it
        return bool(self.study.pruner.prune(self.study, stored))

    def final(self, chosen: Mapping[str, float]) -> float | list[float] | None:
        """What ``study.tell`` takes for a COMPLETE member: its value, or its vector."""
        if not self.multi:
            return chosen.get(self.primary)
        return self.vector(chosen)
