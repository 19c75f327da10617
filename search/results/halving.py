"""Successive halving that keeps each rung's values in memory, so a decision does not scan the
study: Optuna's pruner reads every trial at every rung (a cost that grows with the study, which
at 10,000 trials was most of the driver's time; ``bench/scale.py``); this one decides the same.

Who calls what: ``results/study.py`` makes it for ``pruner.type: successive_halving`` and binds
it to the run's study (:meth:`IndexedHalving.bind`); ``Trial.should_prune`` calls ``prune``
(through :class:`~search.results.views.GroupedPruner`). Called with any other study (a view,
which hides some trials) it is Optuna's pruner, unchanged.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import optuna
from optuna.pruners import SuccessiveHalvingPruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

_RUNG = "completed_rung_"  # Optuna's key for a trial's value at a rung: completed_rung_<k>


class IndexedHalving(SuccessiveHalvingPruner):
    """Optuna's :class:`SuccessiveHalvingPruner` (same arguments, same decisions, the same rung
    values recorded in each trial's system attributes), with the values of each rung kept
    sorted in memory once it is bound to a study."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._storage: Any = None
        self._rungs: dict[str, list[float]] = {}

    def bind(self, study: optuna.Study) -> None:
        """Read the rung values the study holds (a resumed run's) once; later decisions on this
        study use and extend them."""
        self._storage = study._storage  # noqa: SLF001  # which storage the values belong to
        self._rungs = {}
        for t in study.get_trials(deepcopy=False):
            for key, value in t.system_attrs.items():
                if key.startswith(_RUNG):
                    bisect.insort(self._rungs.setdefault(key, []), value)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self._storage is None or study._storage is not self._storage or self._min_resource is None:  # noqa: SLF001
            return super().prune(study, trial)  # a view, or min_resource still to estimate
        step = trial.last_step
        if step is None:
            return False
        rung = 0
        while f"{_RUNG}{rung}" in trial.system_attrs:
            rung += 1
        value = trial.intermediate_values[step]
        while True:
            if step < self._min_resource * self._reduction_factor ** (self._min_early_stopping_rate + rung):
                return False
            if math.isnan(value):
                return True
            key = f"{_RUNG}{rung}"
            study._storage.set_trial_system_attr(trial._trial_id, key, value)  # noqa: SLF001
            others = self._rungs.setdefault(key, [])
            competing = others.copy()
            bisect.insort(competing, value)
            bisect.insort(others, value)
            if len(competing) <= self._bootstrap_count:
                return True
            # as Optuna: promoted when within the best 1/reduction_factor (the best one for the
            # first reduction_factor - 1 values at a rung)
            k = max(0, len(competing) // self._reduction_factor - 1)
            if study.direction == StudyDirection.MAXIMIZE:
                if value < competing[-(k + 1)]:
                    return True
            elif value > competing[k]:
                return True
            rung += 1
