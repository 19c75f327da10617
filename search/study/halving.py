"""Successive halving that keeps each rung's values in memory, so a decision does not scan the
study: Optuna's pruner reads every trial at every rung (a cost that grows with the study, which
at 10,000 trials was most of the driver's time; ``bench/scale.py``); this one decides the same.

Who calls what: ``study/pruners.py`` makes it for ``pruner.type: successive_halving`` and binds
it to the run's study (:meth:`IndexedHalving.bind`); ``Trial.should_prune`` calls ``prune``
(through :class:`~search.study.views.GroupedPruner`). Called with any other study (a view,
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

from search.study.optuna_internals import RUNG_KEY, halving_settings, set_system_attr, storage_of, trial_id


class IndexedHalving(SuccessiveHalvingPruner):
    """Optuna's :class:`SuccessiveHalvingPruner` (same arguments, same decisions, the same rung
    values recorded in each trial's system attributes), with the values of each rung kept
    sorted in memory once it is bound to a study."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bound: Any = None  # the storage the kept values belong to
        self._rungs: dict[str, list[float]] = {}

    def bind(self, study: optuna.Study) -> None:
        """Read the rung values the study holds (a resumed run's) once; later decisions on this
        study use and extend them."""
        self._bound = storage_of(study)
        self._rungs = {}
        for t in study.get_trials(deepcopy=False):
            for key, value in t.system_attrs.items():
                if key.startswith(RUNG_KEY):
                    bisect.insort(self._rungs.setdefault(key, []), value)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        min_resource, factor, rate, bootstrap = halving_settings(self)
        if self._bound is None or storage_of(study) is not self._bound or min_resource is None:
            return super().prune(study, trial)  # a view, or min_resource still to estimate
        step = trial.last_step
        if step is None:
            return False
        rung = 0
        while f"{RUNG_KEY}{rung}" in trial.system_attrs:
            rung += 1
        value = trial.intermediate_values[step]
        while True:
            if step < min_resource * factor ** (rate + rung):
                return False
            if math.isnan(value):
                return True
            key = f"{RUNG_KEY}{rung}"
            set_system_attr(study, trial_id(trial), key, value)
            others = self._rungs.setdefault(key, [])
            competing = others.copy()
            bisect.insort(competing, value)
            bisect.insort(others, value)
            if len(competing) <= bootstrap:
                return True
            # as Optuna: promoted when within the best 1/reduction_factor (the best one for the
            # first reduction_factor - 1 values at a rung)
            k = max(0, len(competing) // factor - 1)
            if study.direction == StudyDirection.MAXIMIZE:
                if value < competing[-(k + 1)]:
                    return True
            elif value > competing[k]:
                return True
            rung += 1
