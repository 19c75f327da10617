"""Per-pair metrics over a masked questions x models matrix (torch, on any device).

``logits`` are [Q, M] (or [K, Q, M] for K pack members); ``y`` is each pair's score in [0, 1]
[Q, M] (0/1 correctness, or a grade); ``mask`` marks the observed pairs. Unobserved pairs never
count.

Graded scores count as a share of a right answer: a pair of score s is s of a positive and
1 - s of a negative. So correctness accuracy is the mean agreement ``s`` where the prediction
says right (p > 0.5) and ``1 - s`` where it says wrong, and AUC is the chance that a positive
outranks a negative with every pair weighted so (pairs of one pair with itself left out). Both
are the usual accuracy and ROC AUC on 0/1 scores.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from router_models.routing import route

ArrayLike = torch.Tensor | np.ndarray


def as_tensor(a: ArrayLike) -> torch.Tensor:
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
    """Mean agreement over observed pairs of the thresholded prediction (logit > 0, p > 0.5)
    with the score (see the module doc; the share of right predictions on 0/1 scores)."""
    logits, y, mask = as_tensor(logits), as_tensor(y), as_tensor(mask).bool()
    if not mask.any():
        return float("nan")
    return float(_agreement(logits.unsqueeze(0).float(), y.float(), mask)[0])


def _agreement(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each member's mean agreement over observed pairs: logits ``[K, Q, M]`` -> ``[K]``."""
    right = (logits > 0).float()
    agree = right * y + (1.0 - right) * (1.0 - y)
    m = mask.float()
    return (agree * m).sum((1, 2)) / m.sum().clamp_min(1.0)


def auc(scores: ArrayLike, y: ArrayLike, mask: ArrayLike) -> float:
    """ROC AUC over observed pairs (Mann-Whitney, ties share their average rank; graded scores
    weighted as the module doc says)."""
    scores, y, mask = as_tensor(scores), as_tensor(y), as_tensor(mask).bool()
    return float(_auc_rows(scores[mask].unsqueeze(0), y[mask].float())[0])


def evaluate(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """loss, correctness_acc, auc and route_acc of one split's logits."""
    return evaluate_members(logits.unsqueeze(0), y, mask)[0]


def _auc_rows(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row of ``scores [K, P]`` against shared scores ``y [P]`` in [0, 1]: each
    pair is ``y`` of a positive and ``1 - y`` of a negative; ties count half; a pair is never
    compared with itself. All rows at once; NaN without both positive and negative weight."""
    s = scores.double()
    pos = y.double()
    neg = 1.0 - pos
    total = pos.sum() * neg.sum() - (pos * neg).sum()
    if not total > 0:
        return torch.full((s.shape[0],), float("nan"), dtype=torch.float64, device=s.device)
    sorted_s, order = torch.sort(s, dim=1)
    p = s.shape[1]
    ar = torch.arange(p, device=s.device).expand_as(sorted_s)
    starts = torch.ones_like(sorted_s, dtype=torch.bool)
    starts[:, 1:] = sorted_s[:, 1:] != sorted_s[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.cummax(torch.where(starts, ar, 0), dim=1).values  # each pair's tie group
    last = torch.cummin(torch.where(ends, ar, p - 1).flip(1), dim=1).values.flip(1)
    pos_s, neg_s = pos[order], neg[order]
    cum = torch.cumsum(neg_s, dim=1)
    below = cum.gather(1, first) - neg_s.gather(1, first)  # negative weight strictly below
    tied = cum.gather(1, last) - below - neg_s  # negative weight tied with it, itself left out
    return (pos_s * (below + 0.5 * tied)).sum(1) / total


def evaluate_members(
    logits: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    cost: torch.Tensor | None = None,
    mean_cost: torch.Tensor | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate` for K members at once: logits ``[K, Q, M]``, one device sync in all.

    With ``cost`` ([Q, M], each pair's cost) and ``mean_cost`` ([M]) also each member's ``aiq``
    (see ``metrics.costs``) and ``cost``, the mean cost per question of the LLMs it routes to.
    """
    logits = logits.float()
    m = mask.bool()
    yf = y.float()
    loss = masked_bce_members(logits, yf, m)
    correct = _agreement(logits, yf, m)
    choice = route(logits, mask=m)
    routed = yf.expand_as(logits).gather(2, choice.unsqueeze(2)).squeeze(2)[:, m.any(dim=1)]
    routed_acc = routed.mean(1) if routed.shape[1] else torch.full_like(loss, float("nan"))
    if not m.any():
        correct = torch.full_like(loss, float("nan"))
    auc = _auc_rows(logits[:, m], yf[m])
    rows = torch.stack([loss.double(), correct.double(), auc, routed_acc.double()], dim=1).tolist()
    out = [dict(zip(("loss", "correctness_acc", "auc", "route_acc"), r)) for r in rows]
    if cost is not None and mean_cost is not None:
        from search.metrics.costs import aiq_of

        # on the CPU, where the curves are scored: each split copied there once per call
        lc, mc, cc = logits.cpu(), m.cpu(), cost.cpu()
        aiqs = aiq_of(lc, yf.cpu(), mc, cc, mean_cost.cpu())
        # the mean cost of the LLM each question is routed to, over the questions with a score
        paid_per = cc.float().expand_as(lc).gather(2, choice.cpu().unsqueeze(2)).squeeze(2)
        spent = paid_per[:, mc.any(dim=1)].mean(1).tolist() if routed.shape[1] else [float("nan")] * len(out)
        for row, value, paid in zip(out, aiqs, spent):
            row["aiq"] = float(value)
            row["cost"] = float(paid)
    return out
