"""Router metrics over a masked questions x models matrix (torch, on any device).

``scores`` are logits or probabilities [Q, M]; ``y`` is correctness in {0, 1} [Q, M]; ``mask``
marks the observed pairs. Unobserved pairs never count.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

ArrayLike = torch.Tensor | np.ndarray


def _t(a: ArrayLike) -> torch.Tensor:
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def masked_bce(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy (with logits) over observed pairs."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), y.float(), reduction="none")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def correctness_acc(logits: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Share of observed pairs whose thresholded prediction (logit > 0, p > 0.5) equals y."""
    logits, y, mask = _t(logits), _t(y), _t(mask).bool()
    hit = ((logits > 0).to(y.dtype) == y)[mask]
    return float(hit.float().mean()) if hit.numel() else float("nan")


def auc(scores: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """ROC AUC over observed pairs (Mann-Whitney, ties share their average rank)."""
    scores, y, mask = _t(scores), _t(y), _t(mask).bool()
    s = scores[mask].double()
    lab = y[mask].bool()
    n_pos = int(lab.sum())
    n_neg = lab.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    sorted_s, order = torch.sort(s)
    _, inverse, counts = torch.unique_consecutive(sorted_s, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg_rank = ends - (counts.double() - 1.0) / 2.0  # 1-based average rank of each tie group
    ranks = avg_rank[inverse]
    pos_rank_sum = ranks[lab[order]].sum()
    return float((pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def route_acc(scores: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Share of questions whose highest-scored observed model answered correctly.

    Questions with no observed model are left out.
    """
    scores, y, mask = _t(scores), _t(y), _t(mask).bool()
    masked = scores.float().masked_fill(~mask, float("-inf"))
    choice = masked.argmax(dim=1)
    has_any = mask.any(dim=1)
    correct = y.gather(1, choice[:, None]).squeeze(1)[has_any]
    return float(correct.float().mean()) if correct.numel() else float("nan")


def model_accuracy(y: ArrayLike, mask: ArrayLike) -> torch.Tensor:
    """Per-model accuracy over observed pairs [M] (NaN for a never-observed model)."""
    y, mask = _t(y).float(), _t(mask).float()
    return (y * mask).sum(0) / mask.sum(0)


def single_best_scores(y_train: ArrayLike, mask_train: ArrayLike, n_questions: int) -> torch.Tensor:
    """Constant scores that route every question to the best-on-train model available for it."""
    acc = torch.nan_to_num(model_accuracy(y_train, mask_train), nan=-1.0)
    return acc[None, :].expand(n_questions, -1)


def single_best_route_acc(y_train: ArrayLike, mask_train: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Routing accuracy of always picking the best model on train (next best where unobserved)."""
    y = _t(y)
    return route_acc(single_best_scores(y_train, mask_train, y.shape[0]), y, mask)


def oracle_route_acc(y: ArrayLike, mask: ArrayLike) -> float:
    """Share of questions that some observed model answered correctly."""
    y, mask = _t(y).bool(), _t(mask).bool()
    has_any = mask.any(dim=1)
    return float((y & mask).any(dim=1)[has_any].float().mean())


def evaluate(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """loss, correctness_acc, auc and route_acc of one split's logits."""
    return {
        "loss": float(masked_bce(logits, y, mask)),
        "correctness_acc": correctness_acc(logits, y, mask),
        "auc": auc(logits, y, mask),
        "route_acc": route_acc(logits, y, mask),
    }


def baselines(y_train: ArrayLike, mask_train: ArrayLike, y: ArrayLike, mask: ArrayLike) -> dict[str, float]:
    """single_best_route_acc and oracle_route_acc for one split."""
    return {
        "single_best_route_acc": single_best_route_acc(y_train, mask_train, y, mask),
        "oracle_route_acc": oracle_route_acc(y, mask),
    }
