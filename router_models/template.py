"""Template for a new router model: copy this file, rename the class, pick a name.

Steps (see README.md, "Adding New Models"):
1. Copy this file to ``router_models/your_model.py``.
2. Rename ``TemplateModel`` and change the name in ``@register_model("template")``.
3. Build your layers in ``__init__``; put one module per hidden layer in ``self.hidden_layers``.
4. Add ``from router_models.your_model import YourModel`` to ``router_models/__init__.py``.

The registry makes it creatable through ``create_model`` and the tests pick it up by
themselves. This template is itself registered and tested, so it always stays a working model.

To be packable (trained with other trials as one fused model, ``router_models/packing.py``),
a model needs only what this one does:
- its tensors live in Linear, LayerNorm, Dropout, activation, Embedding or GaussianNoise
  modules (containers such as Sequential or your own blocks are fine; a parameter set directly
  on a module that is not one of those is not);
- its ``forward`` treats every leading dimension as a batch dimension: index features with
  negative dims (``x.unsqueeze(-2)``, ``.sum(-1)``), never assume ``x.shape[0]`` is the batch.
The packing tests (``tests/router_models/test_packing.py``) run on every registered model; one
that cannot pack is said in one line when a search asks for packs, and ``pack_size: auto``
trains it one trial at a time.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.model_factory import register_model


@register_model("template")
class TemplateModel(BaseModel):
    """A minimal working model: one ``Linear -> LayerNorm -> activation -> Dropout`` per width.

    Takes the common settings only (``BaseModel``: input_dim, hidden_dims, output_dim, dropout,
    activation).
    """

    def __init__(self, **common: Any) -> None:
        # The common settings (input_dim, hidden_dims, output_dim, dropout, activation) are
        # BaseModel's: it checks them and sets self.input_dim, self.hidden_dims, ... A model
        # names only its own extra settings here, before **common (see mf.py's noise_std).
        super().__init__(**common)
        widths = [self.input_dim, *self.hidden_dims]
        self.hidden_layers = nn.ModuleList(
            nn.Sequential(
                nn.Linear(a, b),
                nn.LayerNorm(b),
                self.get_activation_function(self.activation),
                nn.Dropout(self.dropout),
            )
            for a, b in zip(widths[:-1], widths[1:])
        )
        self.head = nn.Linear(widths[-1], self.output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x is already standardized by BaseModel; return one logit per LLM. In a pack x is
        # [members, batch, dim]: the same code runs, as nothing here assumes dim 0 is the batch.
        for layer in self.hidden_layers:
            x = layer(x)
        return self.head(x)
