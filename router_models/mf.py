"""The matrix-factorization router ("mf"), after EmbedLLM's: LLM embeddings times a projected
question embedding, through a linear head."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.layers import GaussianNoise, check_noise_std
from router_models.model_factory import register_model


@register_model("mf")
class MFModel(BaseModel):
    """A learned embedding per LLM, multiplied elementwise with the projected query, then a
    linear head: ``logit[q, m] = head(P[m] * proj(x[q]))``.

    Shape: the question projection is one ``Linear`` per entry of ``hidden_dims``, with an
    activation and dropout between them (none after the last); ``hidden_dims[-1]`` is the width
    ``e`` of the shared latent space, and each of the ``output_dim`` LLMs has an ``e``-wide
    embedding. ``hidden_dims=[128]`` is EmbedLLM's router (a linear projection to 128). While
    training, Gaussian noise of std ``noise_std`` is added to the (standardized) query
    embedding, as EmbedLLM does against overfitting.

    Args:
        noise_std: Training noise on the input, >= 0 (0 turns it off).
        **common: ``BaseModel``'s settings; ``hidden_dims`` are the projection widths (the last
            is the latent width), dropout and activation sit between projection layers.
    """

    def __init__(self, noise_std: float = 0.0, **common: Any) -> None:
        noise_std = check_noise_std("noise_std", noise_std)
        super().__init__(noise_std=noise_std, **common)
        self.noise = GaussianNoise(noise_std, self.input_dim)
        widths = [self.input_dim, *self.hidden_dims]
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(self.hidden_dims) - 1
            tail = [] if last else [self.get_activation_function(self.activation), nn.Dropout(self.dropout)]
            layers.append(nn.Sequential(nn.Linear(w_in, w_out), *tail))
        self.hidden_layers = nn.ModuleList(layers)
        self.llm_embedding = nn.Embedding(self.output_dim, widths[-1])
        self.head = nn.Linear(widths[-1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.noise(x)
        for layer in self.hidden_layers:
            q = layer(q)  # [..., B, e]
        # head(P[m] * q) for every LLM at once: q @ (P * w)^T + b, without a [B, M, e] tensor.
        pw = self.llm_embedding.weight * self.head.weight  # [..., M, e]
        return q @ pw.transpose(-1, -2) + self.head.bias.unsqueeze(-1)
