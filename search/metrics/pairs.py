"""Per-pair metrics over a masked questions x models matrix (torch, on any device).

``logits`` are [Q, M] (or [K, Q, M] for K pack members); ``y`` is correctness in {0, 1} [Q, M];
``mask`` marks the observed pairs. Unobserved pairs never count.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from router_models.routing import route

ArrayLike = torch.Tensor | np.ndarray


def _t(a: ArrayLike) -> torch.Tensor:
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else a


def masked_bce(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy (with logits) over observed pairs."""
    return masked_bce_members(logits.unsqueeze(0), y, mask)[0]


def masked_bce_members(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each member's mean BCE over observed pairs: logits ``[K, B, M]`` -> ``[K]``.

    Each member is normalized by its own pair count: summing these gives every member exactly
    the gradient of its own loss.
    """
    loss = F.binary_cross_entropy_with_logits(logits.float(), y.float().expand_as(logits), reduction="none")
    m = mask.to(loss.dtype)
    return (loss * m).sum((1, 2)) / m.sum().clamp_min(1.0)


def correctness_acc(logits: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """Share of observed pairs whose thresholded prediction (logit > 0, p > 0.5) equals y."""
    logits, y, mask = _t(logits), _t(y), _t(mask).bool()
    hit = ((logits > 0).to(y.dtype) == y)[mask]
    return float(hit.float().mean()) if hit.numel() else float("nan")


def auc(scores: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """ROC AUC over observed pairs (Mann-Whitney, ties share their average rank)."""
    scores, y, mask = _t(scores), _t(y), _t(mask).bool()
    return float(_auc_rows(scores[mask].unsqueeze(0), y[mask].bool())[0])


def evaluate(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """loss, correctness_acc, auc and route_acc of one split's logits."""
    return evaluate_members(logits.unsqueeze(0), y, mask)[0]


def _auc_rows(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row of ``scores [K, P]`` against shared labels ``positive [P]`` (ties
    share their average rank), all rows at once."""
    s = scores.double()
    n_pos = positive.sum().double()
    n_neg = positive.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return torch.full((s.shape[0],), float("nan"), dtype=torch.float64, device=s.device)
    sorted_s, order = torch.sort(s, dim=1)
    p = s.shape[1]
    ar = torch.arange(p, device=s.device).expand_as(sorted_s)
    starts = torch.ones_like(sorted_s, dtype=torch.bool)
    starts[:, 1:] = sorted_s[:, 1:] != sorted_s[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.cummax(torch.where(starts, ar, 0), dim=1).values
    last = torch.cummin(torch.where(ends, ar, p - 1).flip(1), dim=1).values.flip(1)
    ranks = (first + last).double() / 2.0 + 1.0  # 1-based average rank of each tie group
    pos_rank_sum = (ranks * positive[order].double()).sum(1)
    return (pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def evaluate_members(
    logits: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    cost: torch.Tensor | None = None,
    mean_cost: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate` for K members at once: logits ``[K, Q, M]``, one device sync in all.

    With ``cost`` ([Q, M], each pair's cost) and ``mean_cost`` ([M]) also each member's ``aiq``
    (see ``metrics.costs``).
    """
    logits = logits.float()
    m = mask.bool()
    yf = y.float()
    n = m.sum().clamp_min(1).float()
    loss = masked_bce_members(logits, yf, m)
    correct = (((logits > 0).float() == yf) & m).sum((1, 2)) / n
    choice = route(logits, mask=m)
    routed = yf.expand_as(logits).gather(2, choice.unsqueeze(2)).squeeze(2)[:, m.any(dim=1)]
    routed_acc = routed.mean(1) if routed.shape[1] else torch.full_like(loss, float("nan"))
    if not m.any():
        correct = torch.full_like(loss, float("nan"))
    auc = _auc_rows(logits[:, m], yf[m].bool())
    rows = torch.stack([loss.double(), correct.double(), auc, routed_acc.double()], dim=1).tolist()
    out = [dict(zip(("loss", "correctness_acc", "auc", "route_acc"), r)) for r in rows]
    if cost is not None and mean_cost is not None:
        from search.metrics.costs import aiq_of

        for row, value in zip(out, aiq_of(logits.cpu(), yf.cpu(), m.cpu(), cost.cpu(), mean_cost.cpu())):
            row["aiq"] = float(value)
    return out
