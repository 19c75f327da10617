"""Every read or write of Optuna's private API, in one place to audit per Optuna release.

The rest of the house uses Optuna's public API only (the layer test fails on a private name
read anywhere else). What is reached for here, and why:

- a study's storage (``Study._storage``): a pruner's own records and a grouped view wrap it;
- a trial's storage id (``Trial._trial_id``): to write to that trial through the storage, and
  to hand a view's trial back to the study it belongs to;
- the journal's operation codes (``optuna.storages.journal._storage.JournalOperation``): to
  check and repair a journal file record by record;
- successive halving's settings as its pruner holds them (``_min_resource``, estimated on its
  first decision when ``auto``; ``_reduction_factor``, ``_min_early_stopping_rate``,
  ``_bootstrap_count``), read by the indexed halving pruner that subclasses it;
- the system attribute successive halving keeps a trial's value at a rung under
  (``completed_rung_<k>``), read and written by the indexed halving pruner;
- the study's trial list as a sampler reads it (``Study._get_trials``): a warm start shows the
  sampler earlier runs' trials beside the study's own (``with_observations``), without
  writing them into the study.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage

RUNG_KEY = "completed_rung_"  # + the rung's index: a trial's value at that rung


def storage_of(study: optuna.Study) -> BaseStorage:
    """The storage a study reads and writes."""
    return study._storage  # noqa: SLF001


def journal_backend_of(study: optuna.Study) -> Any:
    """The journal backend under a study's storage, or None when it has none."""
    return getattr(getattr(study, "_storage", None), "_backend", None)


def trial_id(trial: optuna.trial.Trial | optuna.trial.FrozenTrial) -> int:
    """A trial's id in its storage (not its number, which counts within its study)."""
    return int(trial._trial_id)  # noqa: SLF001


def trial_of(study: optuna.Study, trial: optuna.trial.Trial | optuna.trial.FrozenTrial) -> optuna.trial.Trial:
    """``trial`` (asked of a view of ``study`` over the same storage) as a trial of ``study``:
    what it reports and is told then goes to the study itself."""
    return optuna.trial.Trial(study, trial_id(trial))


def set_user_attr(study: optuna.Study, trial: int, key: str, value: Any) -> None:
    """Write a user attribute of a running trial by its storage id, where the public path
    (``Trial.set_user_attr``) needs a Trial object the caller does not hold."""
    storage_of(study).set_trial_user_attr(trial, key, value)


def set_system_attr(study: optuna.Study, trial: int, key: str, value: Any) -> None:
    """Write a system attribute of a trial by its storage id (there is no public path)."""
    storage_of(study).set_trial_system_attr(trial, key, value)


def halving_settings(pruner: optuna.pruners.SuccessiveHalvingPruner) -> tuple[int | None, int, int, int]:
    """(min_resource or None while still to estimate, reduction_factor, min_early_stopping_rate,
    bootstrap_count) of a successive halving pruner."""
    return (
        pruner._min_resource,  # noqa: SLF001
        pruner._reduction_factor,  # noqa: SLF001
        pruner._min_early_stopping_rate,  # noqa: SLF001
        pruner._bootstrap_count,  # noqa: SLF001
    )


def journal_operations() -> Any:
    """The enum of the journal's operation codes (its records' ``op_code``)."""
    from optuna.storages.journal._storage import JournalOperation

    return JournalOperation


class _Observed:
    """A study as a sampler sees it, with more finished trials than it holds (see
    :func:`with_observations`); every other attribute is the study's own."""

    def __init__(self, study: optuna.Study, extra: list[optuna.trial.FrozenTrial]) -> None:
        self._study = study
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _more(self, states: Any) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self._extra if states is None or t.state in states]

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list[Any]:
        own = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)  # noqa: SLF001
        return self._more(states) + own

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        return self._more(states) + self._study.get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[Any]:
        return self.get_trials()


def with_observations(study: optuna.Study, extra: list[optuna.trial.FrozenTrial]) -> Any:
    """``study`` as a sampler reads it, with ``extra`` finished trials first (numbered below
    the study's own, so they count as the oldest): what the sampler's model learns from, never
    written into the study, so nothing that reads the study (results, exports, pruners, the
    count of trials run) sees them."""
    return _Observed(study, extra) if extra else study


def numbered(trial: optuna.trial.FrozenTrial, number: int) -> optuna.trial.FrozenTrial:
    """``trial`` (made by ``create_trial``, in no storage) as trial ``number`` with the same
    storage id: an observation :func:`with_observations` shows, never written anywhere."""
    trial.number = number
    trial._trial_id = number  # noqa: SLF001
    return trial
