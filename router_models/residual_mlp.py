"""The residual MLP router ("residual_mlp")."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.errors import ConfigError
from router_models.model_factory import register_model


class ResidualBlock(nn.Module):
    """``x + Dropout(Linear(act(Linear(LayerNorm(x)))))`` at a constant width (pre-norm)."""

    def __init__(self, width: int, activation: nn.Module, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.act = activation
        self.fc2 = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.fc2(self.act(self.fc1(self.norm(x)))))


@register_model("residual_mlp")
class ResidualMLPModel(BaseModel):
    """A router built of pre-norm residual blocks.

    Shape: one stage per entry of ``hidden_dims``. Stage ``i`` is a ``Linear`` projection from
    the previous width (``input_dim`` for the first stage) to ``hidden_dims[i]``, then
    ``num_blocks`` residual blocks of that width, each ``x + Dropout(Linear(act(Linear(
    LayerNorm(x)))))``. A final ``LayerNorm`` and a ``Linear`` head give ``output_dim`` logits.
    So ``hidden_dims=[512, 256]``, ``num_blocks=2`` has 2 projections, 4 residual blocks
    (8 block Linears) and a head; the hidden representation of layer ``i`` is stage ``i``'s
    output.

    Args:
        num_blocks: Residual blocks per stage, >= 1.
        **common: ``BaseModel``'s settings; ``hidden_dims`` are the stage widths.
    """

    def __init__(self, num_blocks: int = 2, **common: Any) -> None:
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise ConfigError(f"num_blocks must be an integer >= 1, got {num_blocks!r}")
        super().__init__(num_blocks=num_blocks, **common)
        self.num_blocks = num_blocks
        widths = [self.input_dim, *self.hidden_dims]
        self.hidden_layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(w_in, w_out),
                *(
                    ResidualBlock(w_out, self.get_activation_function(self.activation), self.dropout)
                    for _ in range(num_blocks)
                ),
            )
            for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.final_norm = nn.LayerNorm(widths[-1])
        self.head = nn.Linear(widths[-1], self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.hidden_layers:
            x = stage(x)
        return self.head(self.final_norm(x))
