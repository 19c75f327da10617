"""The group-mean router ("group_mean"): each LLM's mean score in the query's group, nothing
learned beyond it. With ``prior: none`` it is the single best LLM; with ``prior: task`` and
``prior_strength: 0`` the best LLM per task; with ``cluster`` the best LLM per cluster."""

from __future__ import annotations

from typing import Any

import torch

from router_models.base_model import BaseModel
from router_models.errors import ConfigError
from router_models.model_factory import register_model


@register_model("group_mean")
class GroupMeanModel(BaseModel):
    """Routes by its prior alone (``prior.py``): the LLM with the best smoothed mean score in
    the query's group on train. No parameters; :meth:`fit` fills the table in one step.

    Args:
        **common: ``BaseModel``'s settings; the prior's are used (``prior``, ``clusters``,
            ``prior_strength``, ``task_names``), ``hidden_dims`` must be empty.
    """

    fitted = True
    requires_hidden = False
    always_prior = True

    def __init__(self, **common: Any) -> None:
        if common.get("hidden_dims"):
            raise ConfigError(
                f"hidden_dims: a group_mean router has no hidden layers, got {common['hidden_dims']!r}"
            )
        common["hidden_dims"] = []
        super().__init__(**common)
        self.hidden_layers = torch.nn.ModuleList()

    def set_input_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Kept the identity: groups are found by the cosine of raw embeddings."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.prior is not None
        return self.combine(x, self.prior.assign(x))

    def combine(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        assert self.prior is not None
        return self.prior.logits(groups)
