"""Pareto fronts over several objectives: dominance, the front, the rule that prunes a trial at
a rung, and the rule that picks one front point. Pure functions over value vectors; each
objective has its own :class:`~search.metrics.direction.Direction`.

>>> from search.metrics.direction import Direction
>>> ds = [Direction("max"), Direction("min")]  # accuracy up, latency down
>>> dominates((0.8, 1.0), (0.7, 1.0), ds), dominates((0.8, 2.0), (0.7, 1.0), ds)
(True, False)
>>> front([(0.8, 2.0), (0.7, 1.0), (0.6, 1.5), (0.8, 2.5)], ds)
[0, 1]
>>> pick([(0.8, 2.0), (0.7, 1.0)], ds, [1.0, 0.0])  # all weight on accuracy
0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from search.metrics.direction import Direction

Vector = Sequence[float]


def dominates(a: Vector, b: Vector, directions: Sequence[Direction]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every objective and better in at least one."""
    if not len(a) == len(b) == len(directions):
        raise ValueError(f"need one value per objective, got {len(a)} and {len(b)} for {len(directions)}")
    keys = [(d.key(x), d.key(y)) for d, x, y in zip(directions, a, b)]
    return all(x <= y for x, y in keys) and any(x < y for x, y in keys)


def front(points: Sequence[Vector], directions: Sequence[Direction]) -> list[int]:
    """Indices of the points no other point dominates, in order; equal points all stay."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p, directions) for q in points)]


def dominated_by(point: Vector, others: Sequence[Vector], directions: Sequence[Direction]) -> int:
    """How many of ``others`` dominate ``point``."""
    return sum(dominates(q, point, directions) for q in others)


def prune_at_rung(
    point: Vector, others: Sequence[Vector], directions: Sequence[Direction], fraction: float, min_others: int
) -> bool:
    """The pruning rule of a multi-objective search, at one rung.

    A trial is pruned when at least ``min_others`` other trials (and at least one) reached the
    rung and at least ``fraction`` of them dominate its vector there. A trial on a trade-off
    (better than the others in one objective) is never dominated, so it is never pruned: only
    trials beaten in every objective at once by enough of the others are. With one objective
    and ``fraction`` 0.5 this is the median rule: pruned when at least half the others are
    strictly better. A value that is not finite is beaten by every finite one.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if min_others < 0:
        raise ValueError(f"min_others must be >= 0, got {min_others}")
    if len(others) < max(1, min_others):
        return False
    if not all(math.isfinite(v) for v in point):
        return True
    return dominated_by(point, others, directions) >= fraction * len(others)


def scaled(points: Sequence[Vector], directions: Sequence[Direction]) -> list[list[float]]:
    """Each value scaled over ``points`` to 0 (the worst of them) .. 1 (the best); an objective
    on which all points are equal scales to 1 for every point."""
    out: list[list[float]] = [[] for _ in points]
    for i, d in enumerate(directions):
        keys = [d.key(p[i]) for p in points]
        low, high = min(keys), max(keys)
        for row, k in zip(out, keys):
            row.append(1.0 if high == low else (high - k) / (high - low))
    return out


def pick(points: Sequence[Vector], directions: Sequence[Direction], weights: Sequence[float]) -> int:
    """The index of the point a run exports (config.json, best_router.pt): the highest weighted
    sum of its values scaled over ``points`` (:func:`scaled`); ties go to the better first
    objective, then to the earlier point.

    Raises:
        ValueError: No points, or weights that are not one per objective, each >= 0 and finite,
            not all 0.
    """
    if not points:
        raise ValueError("need at least one point to pick from")
    if len(weights) != len(directions):
        raise ValueError(f"need one weight per objective, got {len(weights)} for {len(directions)}")
    if any(not (math.isfinite(w) and w >= 0) for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {list(weights)}")
    top = max(weights)  # only ratios count: 1e308 or 5e-324 each weigh as 1 each does
    scores = [sum(w / top * s for w, s in zip(weights, row)) for row in scaled(points, directions)]
    first = directions[0]
    return min(range(len(points)), key=lambda i: (-scores[i], first.key(points[i][0]), i))
