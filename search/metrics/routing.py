"""Routing metrics: how often the chosen LLM is right, for a router and the reference routers,
and the routing offsets tuned on val (see ``router_models.route``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from router_models.routing import margin_offsets, route
from search.metrics.pairs import ArrayLike, _t

MARGIN_GRID = tuple(round(0.005 * i, 3) for i in range(61))  # 0 to 0.3, both inclusive


def routed_outcomes(
    scores: ArrayLike, y: ArrayLike, mask: ArrayLike, offsets: Sequence[float] | torch.Tensor | None = None
) -> torch.Tensor:
    """Per question, aligned with the questions: 1.0 if its chosen LLM answered correctly, 0.0
    if not, NaN for a question no LLM was observed on. ``scores`` are logits; the choice is
    ``route(scores, offsets, mask)``."""
    scores, y, mask = _t(scores), _t(y), _t(mask).bool()
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
    """Per-model accuracy over observed pairs [M] (NaN for a never-observed model)."""
    y, mask = _t(y).float(), _t(mask).float()
    return (y * mask).sum(0) / mask.sum(0)


def single_best(y_train: ArrayLike, mask_train: ArrayLike) -> int:
    """The LLM with the best accuracy on train (the first on ties)."""
    return int(torch.nan_to_num(model_accuracy(y_train, mask_train), nan=-1.0).argmax())


def single_best_scores(y_train: ArrayLike, mask_train: ArrayLike, n_questions: int) -> torch.Tensor:
    """Constant logits that route every question to the best-on-train model available for it."""
    acc = torch.nan_to_num(model_accuracy(y_train, mask_train), nan=-1.0).clamp(1e-4, 1 - 1e-4)
    return torch.logit(acc)[None, :].expand(n_questions, -1)


def single_best_route_acc(y_train: ArrayLike, mask_train: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Routing accuracy of always picking the best model on train (next best where unobserved)."""
    y = _t(y)
    return route_acc(single_best_scores(y_train, mask_train, y.shape[0]), y, mask)


def oracle_outcomes(y: ArrayLike, mask: ArrayLike) -> torch.Tensor:
    """Per question: 1.0 if some observed LLM answered it correctly, 0.0 if none, NaN if no LLM
    was observed on it."""
    y, mask = _t(y).bool(), _t(mask).bool()
    any_right = (y & mask).any(dim=1).float()
    return torch.where(mask.any(dim=1), any_right, torch.full_like(any_right, float("nan")))


def oracle_route_acc(y: ArrayLike, mask: ArrayLike) -> float:
    """Share of questions that some observed model answered correctly."""
    y, mask = _t(y).bool(), _t(mask).bool()
    has_any = mask.any(dim=1)
    return float((y & mask).any(dim=1)[has_any].float().mean())


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
    scores = _t(scores)
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
