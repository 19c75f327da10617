"""The routing decision: the LLM with the highest predicted correctness plus its offset.

A router's logits give each LLM's predicted correctness ``sigmoid(logit)``. Routing sends a query
to ``argmax over LLMs of (predicted correctness + offset)``: offsets of zero are the plain argmax;
a margin ``tau`` on the single best LLM routes away from it only when another LLM beats it by
more than ``tau``; ``-lambda * cost`` trades correctness against cost. One function for all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def route(
    logits: torch.Tensor,
    offsets: Sequence[float] | torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The chosen LLM of each query.

    Args:
        logits: Router logits ``[..., num_models]`` (any leading dims).
        offsets: One number per LLM added to the predicted correctness; None means zeros.
        mask: Optional bool ``[..., num_models]``: only True LLMs may be chosen (a query with
            none is routed to its best-scored LLM regardless).

    Returns:
        Indices ``[...]`` (long) of the chosen LLMs.

    Raises:
        ValueError: If ``offsets`` does not have one value per LLM.
    """
    score = torch.sigmoid(logits.float())
    if offsets is not None:
        off = torch.as_tensor(offsets, dtype=score.dtype, device=score.device)
        if off.shape != (score.shape[-1],):
            raise ValueError(
                f"offsets must have {score.shape[-1]} values (one per LLM), got shape {tuple(off.shape)}"
            )
        score = score + off
    if mask is not None:
        masked = score.masked_fill(~mask.bool(), float("-inf"))
        score = torch.where(mask.bool().any(-1, keepdim=True), masked, score)
    return score.argmax(dim=-1)


def margin_offsets(num_models: int, anchor: int, margin: float) -> list[float]:
    """Offsets that favour LLM ``anchor`` by ``margin`` (>= 0) and leave the others at 0."""
    if not 0 <= anchor < num_models:
        raise ValueError(f"anchor must be in [0, {num_models - 1}], got {anchor}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    out = [0.0] * num_models
    out[anchor] = float(margin)
    return out
