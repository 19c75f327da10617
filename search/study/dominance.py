"""Pruning for a study with several objectives, which Optuna does not do (its trials refuse
``report`` and ``should_prune`` there): a rule of ours over each trial's objective vector at a
rung, :func:`search.metrics.pareto.prune_at_rung`.

Who calls what: after each epoch the bridge writes a member's vector at its step with
:func:`record` (a user attribute, so a resumed run judges against the old trials too) and
asks ``study.pruner`` (a :class:`~search.study.views.GroupedPruner` over a
:class:`DominancePruner`) with the trial as stored. The pruner compares the vector with those
of the other trials (of any state but FAIL) that recorded one at the same step.
"""

from __future__ import annotations

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from search.metrics.direction import Direction
from search.metrics.pareto import prune_at_rung
from search.study.optuna_internals import set_user_attr

# A trial's user attribute: its objective vector at each step it reported, {"<step>": [...]}.
VECTORS = "objectives_at"


def record(study: optuna.Study, trial_id: int, vectors: dict[str, list[float]]) -> None:
    """Store a trial's objective vectors by step (``vectors``). Not as Optuna's intermediate
    values: its samplers take a multi-objective trial with intermediate values for a
    single-objective one (multi-objective TPE reads ``study.direction`` for a pruned trial that
    has some, and fails)."""
    set_user_attr(study, trial_id, VECTORS, vectors)  # report() is refused


def curve(trial: FrozenTrial, index: int) -> dict[int, float]:
    """Objective ``index`` of ``trial``'s recorded vectors, by step."""
    return {int(s): float(v[index]) for s, v in trial.user_attrs.get(VECTORS, {}).items()}


def vector_at(trial: FrozenTrial, step: int) -> list[float] | None:
    """``trial``'s objective vector at ``step``, or None when it recorded none there."""
    v = trial.user_attrs.get(VECTORS, {}).get(str(step))
    return [float(x) for x in v] if v is not None else None


class DominancePruner(BasePruner):
    """Prunes a trial at a rung when enough of the trials at that rung dominate it.

    Rungs: every ``interval_steps`` steps from ``warmup_steps`` on, or, when ``rungs_from`` is
    set, the steps ``rungs_from * reduction_factor**k`` (successive halving's). At a rung, the
    trial is pruned when at least ``min_others`` other trials recorded a vector at that step and
    at least ``fraction`` of them dominate its own (``prune_at_rung``).

    Args:
        fraction: Share of the others that must dominate the trial, in (0, 1].
        min_others: Others needed at the rung before any trial is pruned there, >= 0.
        warmup_steps: No rung before this step, >= 0.
        interval_steps: Steps between rungs, >= 1.
        rungs_from: The first rung of a geometric ladder (>= 1), or None.
        reduction_factor: The ladder's ratio (>= 2), used with ``rungs_from``.
    """

    def __init__(
        self,
        fraction: float,
        min_others: int = 0,
        warmup_steps: int = 0,
        interval_steps: int = 1,
        rungs_from: int | None = None,
        reduction_factor: int = 3,
    ) -> None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if min_others < 0:
            raise ValueError(f"min_others must be >= 0, got {min_others}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
        if interval_steps < 1:
            raise ValueError(f"interval_steps must be >= 1, got {interval_steps}")
        if rungs_from is not None and rungs_from < 1:
            raise ValueError(f"rungs_from must be >= 1 or None, got {rungs_from}")
        if reduction_factor < 2:
            raise ValueError(f"reduction_factor must be >= 2, got {reduction_factor}")
        self.fraction = fraction
        self.min_others = min_others
        self.warmup_steps = warmup_steps
        self.interval_steps = interval_steps
        self.rungs_from = rungs_from
        self.reduction_factor = reduction_factor

    def is_rung(self, step: int) -> bool:
        """Whether the trials are judged at ``step``."""
        if self.rungs_from is not None:
            rung = self.rungs_from
            while rung < step:
                rung *= self.reduction_factor
            return rung == step
        return step >= self.warmup_steps and (step - self.warmup_steps) % self.interval_steps == 0

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        steps = [int(s) for s in trial.user_attrs.get(VECTORS, {})]
        step = max(steps) if steps else None  # the trial's newest vector
        if step is None or not self.is_rung(step):
            return False
        point = vector_at(trial, step)
        if point is None:
            return False
        others = []
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number or t.state == TrialState.FAIL:
                continue
            v = vector_at(t, step)
            if v is not None:
                others.append(v)
        return prune_at_rung(point, others, Direction.each_of_study(study), self.fraction, self.min_others)
