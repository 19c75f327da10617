"""An ensemble of routers ("ensemble"): the weighted average of its members' predicted
correctness, as a router like any other."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.model_factory import ConfigError, create_model, read_pipeline_config, register_model
from router_models.probs import prob_logit


@register_model("ensemble")
class EnsembleModel(BaseModel):
    """Members' probabilities averaged with weights; ``forward`` returns the logit of the
    average, so code that applies a sigmoid to any router keeps working.

    Each member keeps its own input standardization (it is part of its weights); the ensemble's
    own is the identity. Ensembles are assembled after a search from its trials, never searched.

    Args:
        input_dim: Embedding width, >= 1 (every member's).
        output_dim: Number of LLMs, >= 1 (every member's).
        members: Member configs, each ``{"model_type": ..., "model_config": {...}}`` (or the
            config.json form); a member may appear once with a larger weight.
        weights: One weight per member, each > 0; normalized to sum to 1.

    Raises:
        ConfigError: On no members, a weight count that differs, a weight <= 0, or a member
            config that does not build.
    """

    searchable = False
    requires_hidden = False  # a member may have none (knn, group_mean)
    weight_vector: torch.Tensor

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        members: Sequence[Mapping[str, Any]] = (),
        weights: Sequence[float] | None = None,
    ) -> None:
        if isinstance(members, (str, bytes, Mapping)) or not isinstance(members, Sequence) or not members:
            raise ConfigError(f"members must be a non-empty list of model configs, got {members!r}")
        weights = [1.0] * len(members) if weights is None else list(weights)
        if len(weights) != len(members):
            raise ConfigError(f"weights has {len(weights)} values for {len(members)} members")
        if any(
            isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0 or not math.isfinite(w)
            for w in weights
        ):
            raise ConfigError(f"every weight must be a number > 0, got {weights}")
        configs = []
        models = []
        for i, member in enumerate(members):
            try:
                pipeline = read_pipeline_config(member)
            except ConfigError as exc:
                raise ConfigError(f"members[{i}]: {exc}") from exc
            if pipeline["model_type"] == "ensemble":
                raise ConfigError(f"members[{i}]: an ensemble cannot be a member")
            config = {
                "model_type": pipeline["model_type"],
                "model_config": dict(pipeline.get("model_config", {})),
            }
            configs.append(config)
            models.append(create_model(config, input_dim, output_dim))
        first = models[0]
        super().__init__(
            input_dim=input_dim,
            hidden_dims=first.hidden_dims,
            output_dim=output_dim,
            dropout=0.0,
            activation="identity",
        )
        self.members = nn.ModuleList(models)
        self.member_configs = configs
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]
        self.register_buffer("weight_vector", torch.tensor(self.weights))

    @property
    def hidden_layers(self) -> nn.ModuleList:  # type: ignore[override]
        """The first member's hidden layers (what ``get_embeddings`` reads)."""
        first = self.members[0]
        assert isinstance(first, BaseModel)
        return first.hidden_layers

    def __call__(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> Any:
        """The members' weighted mean probability as a logit; ``tasks`` goes to every member
        (read by those with a task prior)."""
        probs = torch.stack([torch.sigmoid(m(x, tasks).float()) for m in self.members])
        mean = (probs * self.weight_vector.view(-1, *([1] * (probs.dim() - 1)))).sum(0)
        return prob_logit(mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def model_config(self) -> dict[str, Any]:
        return {
            "members": [dict(c) for c in self.member_configs],
            "weights": list(self.weights),
            "output_dim": self.output_dim,
        }

    def get_model_info(self) -> dict[str, Any]:
        info = super().get_model_info()
        info.update(
            hidden_dims=list(self.hidden_dims),
            members=[c["model_type"] for c in self.member_configs],
            weights=list(self.weights),
        )
        for key in ("dropout", "activation"):
            info.pop(key, None)
        return info
