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

from collections.abc import Callable, Container
from typing import Any

import optuna
from optuna.pruners import BasePruner
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from search.study.optuna_internals import storage_of

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
    storage = storage_of(study)  # what the view wraps
    return optuna.Study(
        study_name=study.study_name,
        storage=_ViewStorage(storage, keep),  # type: ignore[abstract]  # forwarded above
        sampler=study.sampler,
        pruner=pruner or optuna.pruners.NopPruner(),
    )


class GroupedPruner(BasePruner):
    """Judges a trial against the trials like it: of its own model type (``group``), and, where
    ``scope`` is set, only those it may see. Wraps any Optuna pruner.

    Who calls what: the study's trials call ``prune(study, trial)`` (``Trial.should_prune``)
    after the bridge reports a value; this pruner builds the view and asks ``inner`` about it.
    A reproducible search's bridge sets ``scope`` (``study/ordering.py``): given the trial, a
    test of the trial numbers it may be compared with, so each decision sees the same history on
    every run.

    Args:
        inner: The pruner that decides.
        group: The param whose value sets a trial's group (``model_type``), or None.
    """

    def __init__(self, inner: BasePruner, group: str | None) -> None:
        if not isinstance(inner, BasePruner):
            raise TypeError(f"inner must be an Optuna pruner, got {inner!r}")
        if group is not None and (not isinstance(group, str) or not group):
            raise ValueError(f"group must be a param name or None, got {group!r}")
        self.inner = inner
        self.group = group
        self.scope: Callable[[FrozenTrial], Callable[[int], bool] | None] | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        visible = self.scope(trial) if self.scope is not None else None
        if self.group is None and visible is None:
            return self.inner.prune(study, trial)

        def keep(t: FrozenTrial) -> FrozenTrial | None:
            if t.number == trial.number:
                return t
            if self.group is not None and t.params.get(self.group) != trial.params.get(self.group):
                return None
            if visible is not None and not visible(t.number):
                return None
            return t

        return self.inner.prune(view(study, keep), trial)
