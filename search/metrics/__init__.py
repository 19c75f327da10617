"""Metrics: per-pair (loss, correctness, AUC), routing (with offsets), comparisons between routers.

Pure functions over scores, labels and masks, used by the trainer, the routing table, the
report and ensemble selection alike.
"""

from search.metrics.compare import paired_bootstrap, simplest_within_noise, verdict
from search.metrics.costs import (
    aiq,
    aiq_of,
    budget_figures,
    cost_curve,
    cost_range,
    lambda_for_budget,
    lambda_grid,
    quality_at,
)
from search.metrics.pairs import (
    auc,
    correctness_acc,
    evaluate,
    evaluate_members,
    masked_bce,
    masked_bce_members,
)
from search.metrics.routing import (
    MARGIN_GRID,
    baselines,
    model_accuracy,
    oracle_outcomes,
    oracle_route_acc,
    route_acc,
    routed_correct,
    routed_outcomes,
    single_best,
    single_best_route_acc,
    single_best_scores,
    task_best,
    task_best_scores,
    tune_margin,
)
from search.metrics.tasks import format_tasks, per_task

__all__ = [
    "MARGIN_GRID",
    "aiq",
    "aiq_of",
    "auc",
    "budget_figures",
    "cost_curve",
    "cost_range",
    "lambda_for_budget",
    "lambda_grid",
    "quality_at",
    "baselines",
    "correctness_acc",
    "evaluate",
    "evaluate_members",
    "masked_bce",
    "masked_bce_members",
    "model_accuracy",
    "oracle_outcomes",
    "task_best",
    "task_best_scores",
    "oracle_route_acc",
    "paired_bootstrap",
    "per_task",
    "format_tasks",
    "route_acc",
    "routed_correct",
    "routed_outcomes",
    "single_best",
    "single_best_route_acc",
    "single_best_scores",
    "simplest_within_noise",
    "tune_margin",
    "verdict",
]
