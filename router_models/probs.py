"""Probabilities back to logits, the one way this project does it: clamped to
``[PROB_EPS, 1 - PROB_EPS]`` first, so that a probability of 0 or 1 (a kNN vote, an LLM right
on every train question) stays a finite logit. An ensemble's forward, ensemble selection, the
single-best and kNN references all use it."""

from __future__ import annotations

import torch

PROB_EPS = 1e-6


def prob_logit(p: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` of ``p`` clamped to ``[PROB_EPS, 1 - PROB_EPS]``."""
    p = p.clamp(PROB_EPS, 1.0 - PROB_EPS)
    return torch.log(p) - torch.log1p(-p)
