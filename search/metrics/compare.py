"""Comparing two routers on the same questions: a paired bootstrap interval and its verdict."""

from __future__ import annotations

import torch

BOOTSTRAP_SAMPLES = 2000


def paired_bootstrap(
    a: torch.Tensor,
    b: torch.Tensor,
    samples: int = BOOTSTRAP_SAMPLES,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired questions and its percentile bootstrap interval.

    Questions are resampled with replacement, the same draw for both routers (paired), so what
    the two have in common cancels out.

    Args:
        a: Per-question outcomes of router A (e.g. 1.0 where its chosen LLM was right), ``[n]``.
        b: The same questions' outcomes for router B, ``[n]``.
        samples: Bootstrap resamples, >= 1.
        level: Coverage of the interval, in (0, 1).
        seed: Seeds the resampling (the interval is reproducible).

    Returns:
        ``(difference, low, high)``.

    Raises:
        ValueError: On different lengths, no questions, or a bad samples or level.
    """
    if a.shape != b.shape or a.dim() != 1 or a.numel() == 0:
        raise ValueError(
            f"need two equal, non-empty 1-d outcome vectors, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if samples < 1 or not 0 < level < 1:
        raise ValueError(f"samples must be >= 1 and level in (0, 1), got {samples} and {level}")
    diff = a.double() - b.double()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, diff.numel(), (samples, diff.numel()), generator=gen)
    means = diff[idx].mean(dim=1)
    tail = (1.0 - level) / 2.0
    low, high = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=means.dtype)).tolist()
    return float(diff.mean()), float(low), float(high)


def verdict(low: float, high: float) -> str:
    """``better`` when the whole interval is above 0, ``worse`` below, else ``not distinguishable``."""
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "not distinguishable"


def simplest_within_noise(
    outcomes: dict[str, torch.Tensor], ranks: dict[str, int], seed: int = 0
) -> tuple[str, str, tuple[float, float, float]]:
    """The candidate to recommend from per-question outcomes on val, without trusting val noise.

    The best on val is the candidate with the highest mean outcome (the simpler on ties). The
    recommendation is the simplest candidate (lowest rank; within a rank the better on val)
    whose paired difference to the best has a 95% bootstrap interval reaching 0: a more complex
    router is chosen only when it routes significantly better on val than every simpler one.

    Args:
        outcomes: Candidate name -> per-question outcomes on the same val questions.
        ranks: Candidate name -> its simplicity (lower is simpler).

    Returns:
        ``(recommended, best on val, (difference, low, high))``: the difference of the
        recommended to the best in mean outcome, with its interval (zeros when they are one).

    Raises:
        ValueError: With no candidates, or a candidate without a rank.
    """
    if not outcomes:
        raise ValueError("need at least one candidate")
    missing = [n for n in outcomes if n not in ranks]
    if missing:
        raise ValueError(f"no rank for {missing[0]!r}")
    means = {n: float(o.double().mean()) for n, o in outcomes.items()}
    order = sorted(outcomes, key=lambda n: (ranks[n], -means[n]))
    best = max(order, key=lambda n: (means[n], -order.index(n)))
    for name in order:
        if name == best:
            return name, best, (0.0, 0.0, 0.0)
        diff, low, high = paired_bootstrap(outcomes[name], outcomes[best], seed=seed)
        if high >= 0:
            return name, best, (diff, low, high)
    raise AssertionError("unreachable: the best candidate is in the order")
