"""The one pruner factory: what a space's ``search.pruner`` becomes in the run's study.

Who calls what: ``store.open_study`` calls :func:`study_pruner` once per study it opens, and
:func:`bind` once the study is loaded (a pruner that keeps its own index reads the study's
history then). Every pruner a study holds is a :class:`~search.study.views.GroupedPruner`, so a
trial is judged against trials of its own model type where the space asks, and against the
trials it may see in a reproducible search.
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner

from search.space import Space
from search.space.search_spec import PrunerSpec
from search.study.dominance import DominancePruner
from search.study.halving import IndexedHalving
from search.study.views import GroupedPruner


def study_pruner(space: Space) -> GroupedPruner:
    """The pruner of a study over ``space``: one objective or several, grouped by model type
    when the space is conditional and ``per_model_type`` is on."""
    search = space.search
    group = "model_type" if space.conditional and search.pruner.per_model_type else None
    if search.multi:
        inner = dominance_pruner(search.pruner)
    else:
        inner = single_pruner(search.pruner, space.max_epochs)
    return GroupedPruner(inner, group)


def bind(pruner: BasePruner, study: optuna.Study) -> None:
    """Let ``pruner`` read ``study``'s history once it is loaded (a resumed run's rungs)."""
    inner = pruner.inner if isinstance(pruner, GroupedPruner) else pruner
    if isinstance(inner, IndexedHalving):
        inner.bind(study)


def single_pruner(spec: PrunerSpec, max_epochs: int) -> BasePruner:
    """The pruner of a search with one objective: Optuna's own for ``search.pruner``, with
    successive halving as :class:`IndexedHalving` (the same decisions, without a scan of the
    study per decision)."""
    if spec.type == "median":
        return optuna.pruners.MedianPruner(spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps)
    if spec.type == "percentile":
        return optuna.pruners.PercentilePruner(
            spec.percentile, spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps
        )
    if spec.type == "successive_halving":
        return IndexedHalving(spec.min_resource, spec.reduction_factor, spec.min_early_stopping_rate)
    if spec.type == "hyperband":
        min_resource = 1 if spec.min_resource == "auto" else spec.min_resource
        return optuna.pruners.HyperbandPruner(min_resource, max_epochs, spec.reduction_factor)
    return optuna.pruners.NopPruner()


def dominance_pruner(spec: PrunerSpec) -> BasePruner:
    """The pruner of a multi-objective search for ``search.pruner`` (hyperband is refused by
    the space): ``median`` prunes a trial dominated by half the others at a step (after
    ``n_warmup_steps``, every ``interval_steps``, once ``n_startup_trials`` others are there);
    ``percentile`` by ``percentile`` % of them; ``successive_halving`` by 1/``reduction_factor``
    of them at its rungs (from ``min_resource`` epochs, 1 for ``auto``); ``none`` never."""
    if spec.type in ("median", "percentile"):
        fraction = 0.5 if spec.type == "median" else max(spec.percentile / 100, 1e-9)
        return DominancePruner(fraction, spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps)
    if spec.type == "successive_halving":
        first = 1 if spec.min_resource == "auto" else spec.min_resource
        return DominancePruner(
            1 / spec.reduction_factor,
            rungs_from=first * spec.reduction_factor**spec.min_early_stopping_rate,
            reduction_factor=spec.reduction_factor,
        )
    if spec.type == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner type {spec.type!r} judges one objective")
