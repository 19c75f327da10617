"""Views of the study: the same study with some trials hidden (or shown as of a step), for the
pruner and the sampler, so that what they decide does not depend on which trial happened to
finish first, and a slow model family is judged against its own kind.

A view is an ``optuna.Study`` over a storage that forwards every call to the run's storage but
``get_all_trials``, which it filters: writes (a pruner's rung records, an asked trial) land in
the run's study; reads see only the kept trials. Pruners and samplers read trials only through
the storage, so any of them works over a view, Optuna's own wrappers (Hyperband's brackets)
included.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container
from typing import Any

import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

Keep = Callable[[FrozenTrial], FrozenTrial | None]  # the trial as shown, or None to hide it

# computed from get_all_trials by BaseStorage itself, so they see the view
_FROM_TRIALS = {"get_all_trials", "get_n_trials", "get_best_trial"}


class _ViewStorage(BaseStorage):
    def __init__(self, inner: BaseStorage, keep: Keep) -> None:
        self._inner = inner
        self._keep = keep

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        shown = (self._keep(t) for t in self._inner.get_all_trials(study_id, deepcopy=deepcopy))
        return [t for t in shown if t is not None and (states is None or t.state in states)]


def _forward(name: str) -> Callable[..., Any]:
    def call(self: _ViewStorage, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    call.__name__ = name
    return call


for _name in dir(BaseStorage):
    if not _name.startswith("_") and _name not in _FROM_TRIALS and callable(getattr(BaseStorage, _name)):
        setattr(_ViewStorage, _name, _forward(_name))
_ViewStorage.__abstractmethods__ = frozenset()


def view(study: optuna.Study, keep: Keep, pruner: BasePruner | None = None) -> optuna.Study:
    """``study`` as ``keep`` shows it (same name, sampler and directions)."""
    storage = study._storage  # the one private name read here: what the view wraps
    return optuna.Study(
        study_name=study.study_name,
        storage=_ViewStorage(storage, keep),  # type: ignore[abstract]  # forwarded above
        sampler=study.sampler,
        pruner=pruner or optuna.pruners.NopPruner(),
    )


class GroupedPruner(BasePruner):
    """Judges a trial against the trials like it: of its own model type (``group``), and with
    ``earlier_only`` only those of a lower number. Wraps any Optuna pruner.

    Who calls what: the bridge calls ``prune(study, trial)`` after reporting the trial's value
    at a step; this pruner builds the view and asks ``inner`` about it.

    With ``earlier_only`` the bridge reports steps in trial-number order (each trial's step
    once every lower-numbered live trial has reported it), so the view is the same whatever
    finished first. Median and percentile pruners compare with completed trials; there, an
    earlier trial that reached the step and was not pruned at or before it counts as one
    (whether it has completed yet is a matter of timing).

    Args:
        inner: The pruner that decides.
        group: The param whose value sets a trial's group (``model_type``), or None.
        earlier_only: Compare only with lower-numbered trials.
    """

    def __init__(self, inner: BasePruner, group: str | None, earlier_only: bool) -> None:
        if not isinstance(inner, BasePruner):
            raise TypeError(f"inner must be an Optuna pruner, got {inner!r}")
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"group must be a param name or None, got {group!r}")
        self.inner = inner
        self.group = group
        self.earlier_only = bool(earlier_only)

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if self.group is None and not self.earlier_only:
            return self.inner.prune(study, trial)
        step = trial.last_step
        as_completed = self.earlier_only and isinstance(self.inner, PercentilePruner) and step is not None

        def keep(t: FrozenTrial) -> FrozenTrial | None:
            if t.number == trial.number:
                return t
            if self.group is not None and t.params.get(self.group) != trial.params.get(self.group):
                return None
            if self.earlier_only and t.number > trial.number:
                return None
            if as_completed and t.state != TrialState.COMPLETE and step in t.intermediate_values:
                pruned_by_then = t.state == TrialState.PRUNED and (t.last_step or 0) <= step
                if not pruned_by_then:
                    shown = copy.copy(t)
                    shown.state = TrialState.COMPLETE
                    return shown
            return t

        return self.inner.prune(view(study, keep), trial)
