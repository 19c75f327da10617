"""The plain multi-layer perceptron router ("mlp")."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.model_factory import register_model


@register_model("mlp")
class MLPModel(BaseModel):
    """A feed-forward router.

    Shape: one hidden layer per entry of ``hidden_dims``, each ``Linear -> activation ->
    Dropout``; then a ``Linear`` head to ``output_dim`` logits. ``hidden_dims=[512, 256, 128]``
    on 768-d input with 112 LLMs is 768 -> 512 -> 256 -> 128 -> 112.

    Takes the common settings only (``BaseModel``: input_dim, hidden_dims, output_dim, dropout,
    activation).
    """

    def __init__(self, **common: Any) -> None:
        super().__init__(**common)  # the common settings, checked; BaseModel names them
        widths = [self.input_dim, *self.hidden_dims]
        self.hidden_layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(w_in, w_out),
                self.get_activation_function(self.activation),
                nn.Dropout(self.dropout),
            )
            for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.head = nn.Linear(widths[-1], self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.hidden_layers:
            x = layer(x)
        return self.head(x)
