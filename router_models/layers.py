"""Small building blocks shared by router models."""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """Adds ``N(0, std^2)`` noise to its input while training; the identity in eval mode.

    Args:
        std: Noise standard deviation, >= 0 (0 turns it off).
        dim: Width of the input's last dimension, >= 1 (lets packs add noise to real units only).

    Raises:
        ValueError: If ``std`` is negative or not finite, or ``dim`` is not a positive integer.
    """

    def __init__(self, std: float, dim: int) -> None:
        super().__init__()
        if isinstance(std, bool) or not isinstance(std, (int, float)) or not 0.0 <= float(std) < float("inf"):
            raise ValueError(f"noise std must be a finite number >= 0, got {std!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"noise dim must be a positive integer, got {dim!r}")
        self.std = float(std)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0.0:
            return x
        return x + torch.randn_like(x) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}, dim={self.dim}"
