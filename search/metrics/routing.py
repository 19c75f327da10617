"""Routing metrics: the mean score of the chosen LLM (routing accuracy on 0/1 scores), for a
router and the reference routers, and the routing offsets tuned on val (see
``router_models.route``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from router_models.probs import prob_logit
from router_models.routing import margin_offsets, route
from search.metrics.pairs import ArrayLike, as_tensor

MARGIN_GRID = tuple(round(0.005 * i, 3) for i in range(61))  # 0 to 0.3, both inclusive


def routed_outcomes(
    scores: ArrayLike, y: ArrayLike, mask: ArrayLike, offsets: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Per question, aligned with the questions: its chosen LLM's score (1.0 or 0.0 on 0/1
    data), NaN for a question no LLM was observed on. ``scores`` are logits; the choice is
    ``route(scores, offsets, mask)``."""
    scores, y, mask = as_tensor(scores), as_tensor(y), as_tensor(mask).bool()
    choice = route(scores, offsets, mask)
    correct = y.float().gather(-1, choice.unsqueeze(-1)).squeeze(-1)
    return torch.where(mask.any(dim=-1), correct, torch.full_like(correct, float("nan")))


def routed_correct(
    scores: ArrayLike, y: ArrayLike, mask: ArrayLike, offsets: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Per question (with an observed LLM): 1.0 if its chosen LLM answered correctly, else 0.0."""
    outcomes = routed_outcomes(scores, y, mask, offsets)
    return outcomes[~torch.isnan(outcomes)]


def route_acc(
    scores: ArrayLike, y: ArrayLike, mask: ArrayLike, offsets: Sequence[float] | torch.Tensor | None = None
) -> float:
    """Share of questions whose chosen LLM answered correctly (questions with no observed LLM
    are left out). ``scores`` are logits; ``offsets`` as in ``router_models.route``."""
    correct = routed_correct(scores, y, mask, offsets)
    return float(correct.mean()) if correct.numel() else float("nan")


def model_accuracy(y: ArrayLike, mask: ArrayLike) -> torch.Tensor:
    """Per-model mean score over observed pairs [M] (accuracy on 0/1 scores; NaN for a
    never-observed model)."""
    y, mask = as_tensor(y).float(), as_tensor(mask).float()
    return (y * mask).sum(0) / mask.sum(0)


def single_best(y_train: ArrayLike, mask_train: ArrayLike) -> int:
    """The LLM with the best accuracy on train (the first on ties)."""
    return int(torch.nan_to_num(model_accuracy(y_train, mask_train), nan=-1.0).argmax())


def single_best_scores(y_train: ArrayLike, mask_train: ArrayLike, n_questions: int) -> torch.Tensor:
    """Constant logits that route every question to the best-on-train model available for it."""
    acc = torch.nan_to_num(model_accuracy(y_train, mask_train), nan=-1.0)
    return prob_logit(acc)[None, :].expand(n_questions, -1)


def single_best_route_acc(y_train: ArrayLike, mask_train: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Routing accuracy of always picking the best model on train (next best where unobserved)."""
    y = as_tensor(y)
    return route_acc(single_best_scores(y_train, mask_train, y.shape[0]), y, mask)


def oracle_outcomes(y: ArrayLike, mask: ArrayLike) -> torch.Tensor:
    """Per question: the best score of any observed LLM (1.0 if some LLM answered it correctly
    on 0/1 data), NaN if no LLM was observed on it."""
    y, mask = as_tensor(y).float(), as_tensor(mask).bool()
    best = torch.where(mask, y, torch.full_like(y, -1.0)).max(dim=1).values
    return torch.where(mask.any(dim=1), best, torch.full_like(best, float("nan")))


def oracle_route_acc(y: ArrayLike, mask: ArrayLike) -> float:
    """Mean over questions of the best observed score (the share some LLM answered correctly)."""
    best = oracle_outcomes(y, mask)
    best = best[~torch.isnan(best)]
    return float(best.mean()) if best.numel() else float("nan")


def _task_accuracy_table(
    y_train: ArrayLike, mask_train: ArrayLike, tasks_train: np.ndarray, n_tasks: int
) -> torch.Tensor:
    """Each task's mean score per LLM on train ``[n_tasks, M]``, in one pass over the questions;
    an LLM's overall mean where it was never observed in a task (so the best-per-task rule never
    picks an LLM for lack of data; the ``group_mean`` baseline router's rule)."""
    y, m = as_tensor(y_train).float(), as_tensor(mask_train).float()
    t = torch.from_numpy(np.asarray(tasks_train, dtype=np.int64))
    hits = torch.zeros(n_tasks, y.shape[1]).index_add_(0, t, y * m)
    seen = torch.zeros_like(hits).index_add_(0, t, m)
    overall = torch.nan_to_num(model_accuracy(y, m), nan=0.0)
    return torch.where(seen > 0, hits / seen.clamp_min(1.0), overall.expand_as(hits))


def task_best(y_train: ArrayLike, mask_train: ArrayLike, tasks_train: np.ndarray, n_tasks: int) -> list[int]:
    """Per task, the LLM with the best mean score on its train questions (the single best
    overall for a task with no train question; the first on ties)."""
    return _task_accuracy_table(y_train, mask_train, tasks_train, n_tasks).argmax(1).tolist()


def task_best_scores(
    y_train: ArrayLike, mask_train: ArrayLike, tasks_train: np.ndarray, tasks: np.ndarray, n_tasks: int
) -> torch.Tensor:
    """Logits of each question's task's mean scores on train (``task_best``): routed, the
    baseline of picking one LLM per task."""
    table = prob_logit(_task_accuracy_table(y_train, mask_train, tasks_train, n_tasks))
    return table[torch.from_numpy(np.asarray(tasks, dtype=np.int64))]


def tune_margin(
    scores: ArrayLike,
    y: ArrayLike,
    mask: ArrayLike,
    anchor: int,
    grid: Sequence[float] = MARGIN_GRID,
) -> tuple[list[float], float, float]:
    """The switching margin that routes best on these (validation) questions.

    Route to LLM ``anchor`` (the single best on train) unless another LLM's predicted
    correctness beats it by more than the margin; the margin is the grid value with the best
    routing accuracy here (the smallest on ties, so plain argmax wins ties).

    Returns:
        ``(offsets, margin, route_acc)``: offsets for ``router_models.route``, the margin, and
        the routing accuracy it gives on these questions.
    """
    scores = as_tensor(scores)
    num_models = scores.shape[-1]
    best = (float("-inf"), 0.0)
    for margin in grid:
        acc = route_acc(scores, y, mask, margin_offsets(num_models, anchor, margin))
        if acc > best[0]:
            best = (acc, float(margin))
    return margin_offsets(num_models, anchor, best[1]), best[1], best[0]


def baselines(y_train: ArrayLike, mask_train: ArrayLike, y: ArrayLike, mask: ArrayLike) -> dict[str, float]:
    """single_best_route_acc and oracle_route_acc for one split."""
    return {
        "single_best_route_acc": single_best_route_acc(y_train, mask_train, y, mask),
        "oracle_route_acc": oracle_route_acc(y, mask),
    }
