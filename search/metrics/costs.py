"""Cost-aware routing: accuracy against cost as the willingness to pay varies.

With a willingness to pay ``lambda``, a router sends a query to ``argmax over LLMs of (predicted
correctness - lambda * expected cost of that LLM)``: the routing offsets of
``router_models.route`` set to ``-lambda * mean cost``. Sweeping ``lambda`` from 0 (plain
routing) to where the cheapest LLM always wins traces the router's accuracy-cost curve; the
realized cost of a query is what the chosen LLM cost on it.

AIQ (RouterBench's Average Improvement in Quality) summarizes a curve: the area under its
non-decreasing convex hull (mixing two operating points at random reaches any point between
them) over a cost range, divided by the range. Routers compared on one split share one range:
the cheapest to the dearest single LLM's mean cost there; below a router's cheapest point its
quality counts as 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from router_models.routing import route

LAMBDA_POINTS = 48


def lambda_grid(mean_cost: torch.Tensor | np.ndarray, points: int = LAMBDA_POINTS) -> list[float]:
    """0, then log-spaced willingness-to-pay values up to where cost alone decides.

    Predicted correctness differs by at most 1 between LLMs, so once ``lambda`` times the
    smallest gap between two LLMs' costs exceeds 1, the cheapest LLM always wins.
    """
    c = np.unique(np.asarray(mean_cost, dtype=np.float64))
    c = c[c > 0] if (c > 0).any() else np.array([1.0])
    gaps = np.diff(np.unique(np.asarray(mean_cost, dtype=np.float64)))
    gap = gaps[gaps > 0].min() if (gaps > 0).any() else c.max()
    hi = 2.0 / gap
    lo = 1e-3 / c.max()
    return [0.0, *np.geomspace(lo, max(hi, lo * 10), points - 1).tolist()]


def cost_curve(
    logits: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    cost: torch.Tensor,
    mean_cost: torch.Tensor,
    lambdas: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """Routing accuracy and mean realized cost per query at each ``lambda``.

    Args:
        logits: Router logits ``[Q, M]`` (or ``[K, Q, M]`` for K routers at once).
        y: Correctness ``[Q, M]``. mask: observed pairs ``[Q, M]``.
        cost: Each pair's cost ``[Q, M]`` (what the chosen LLM costs on that question).
        mean_cost: Each LLM's expected cost ``[M]`` (from train), the routing penalty.
        lambdas: Willingness-to-pay values.

    Returns:
        ``(accuracy, cost)``, each ``[L]`` (or ``[K, L]``), over questions with an observed LLM.
    """
    m = mask.bool()
    answerable = m.any(dim=-1)
    acc, spent = [], []
    for lam in lambdas:
        choice = route(logits, -float(lam) * mean_cost, m)
        got = y.float().expand_as(logits).gather(-1, choice.unsqueeze(-1)).squeeze(-1)[..., answerable]
        paid = cost.float().expand_as(logits).gather(-1, choice.unsqueeze(-1)).squeeze(-1)[..., answerable]
        acc.append(got.mean(dim=-1))
        spent.append(paid.mean(dim=-1))
    return torch.stack(acc, dim=-1).double().numpy(), torch.stack(spent, dim=-1).double().numpy()


def cost_range(cost: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """The cheapest and the dearest single LLM's mean cost per query on these questions."""
    per_llm = cost.float()[mask.bool().any(dim=-1)].mean(dim=0)
    return float(per_llm.min()), float(per_llm.max())


def aiq_of(
    logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, cost: torch.Tensor, mean_cost: torch.Tensor
) -> np.ndarray:
    """AIQ of each router's curve (``logits`` ``[Q, M]`` or ``[K, Q, M]``) over the single LLMs'
    cost range on these questions."""
    accs, costs = cost_curve(logits, y, mask, cost, mean_cost, lambda_grid(mean_cost))
    low, high = cost_range(cost, mask)
    accs, costs = np.atleast_2d(accs), np.atleast_2d(costs)
    return np.array([aiq(c, a, low, high) for c, a in zip(costs, accs)])


def _hull(costs: np.ndarray, accs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The upper convex hull of the points, made non-decreasing in cost."""
    order = np.lexsort((-accs, costs))
    pts: list[tuple[float, float]] = []
    for c, a in zip(costs[order], accs[order]):
        if pts and c == pts[-1][0]:
            continue  # same cost: the first (highest accuracy) wins
        while len(pts) >= 2:
            (c1, a1), (c2, a2) = pts[-2], pts[-1]
            if (a2 - a1) * (c - c1) <= (a - a1) * (c2 - c1):  # the middle point lies under
                pts.pop()
            else:
                break
        pts.append((float(c), float(a)))
    hc = np.array([p[0] for p in pts])
    ha = np.maximum.accumulate(np.array([p[1] for p in pts]))
    return hc, ha


def quality_at(costs: np.ndarray, accs: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """The best accuracy reachable at each budget (mixing operating points), 0 below the cheapest."""
    hc, ha = _hull(np.asarray(costs, dtype=np.float64), np.asarray(accs, dtype=np.float64))
    out = np.interp(budget, hc, ha, left=0.0, right=ha[-1])
    return np.where(budget < hc[0], 0.0, out)


def aiq(costs: np.ndarray, accs: np.ndarray, low: float, high: float, points: int = 2001) -> float:
    """AIQ of a curve over ``[low, high]`` (see the module doc)."""
    if not high > low:
        return float(quality_at(costs, accs, np.array([high]))[0])
    grid = np.linspace(low, high, points)
    q = quality_at(costs, accs, grid)
    return float(((q[1:] + q[:-1]) / 2 * np.diff(grid)).sum() / (high - low))


def budget_figures(
    costs: np.ndarray, accs: np.ndarray, reference_cost: float, reference_acc: float
) -> dict[str, float | None]:
    """Against a reference LLM (the single best): the best accuracy at no more than half its
    cost, and the lowest cost reaching 95% of its accuracy as a share of its cost (None when
    never reached)."""
    half = quality_at(costs, accs, np.array([0.5 * reference_cost]))[0]
    reach = np.asarray(costs)[np.asarray(accs) >= 0.95 * reference_acc]
    share = float(reach.min() / reference_cost) if reach.size and reference_cost > 0 else None
    return {"acc_at_half_cost": float(half), "cost_share_for_95pct": share}


def lambda_for_budget(costs: np.ndarray, lambdas: Sequence[float], budget: float) -> tuple[float, float]:
    """The smallest ``lambda`` whose mean cost per query is at most ``budget`` (cost falls as
    lambda grows), and that cost; the largest lambda when none reaches the budget."""
    for lam, c in zip(lambdas, costs):
        if c <= budget:
            return float(lam), float(c)
    return float(lambdas[-1]), float(costs[-1])
