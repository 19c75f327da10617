"""Small building blocks shared by router models."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from router_models.base_model import check_positive_int
from router_models.errors import ConfigError


def check_noise_std(name: str, value: Any) -> float:
    """``value`` as a float, or ConfigError naming ``name`` unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class GaussianNoise(nn.Module):
    """Adds ``N(0, std^2)`` noise to its input while training; the identity in eval mode.

    Args:
        std: Noise standard deviation, >= 0 (0 turns it off).
        dim: Width of the input's last dimension, >= 1 (lets packs add noise to real units only).

    Raises:
        ConfigError: If ``std`` is negative or not finite, or ``dim`` is not a positive integer.
    """

    def __init__(self, std: float, dim: int) -> None:
        super().__init__()
        std = check_noise_std("noise std", std)
        check_positive_int("noise dim", dim)
        self.std = std
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.std == 0.0:
            return x
        return x + torch.randn_like(x) * self.std

    def extra_repr(self) -> str:
        return f"std={self.std}, dim={self.dim}"
