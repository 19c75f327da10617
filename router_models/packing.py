"""Packs: K routers of one structure trained as one fused module.

A pack is built from K member models that share a module tree: the same containers, and the
same kinds of leaf modules (Linear, LayerNorm, Dropout, activations, Embedding, GaussianNoise) in
the same places. Each leaf becomes one packed leaf that holds all K members' tensors stacked on a
leading member axis; the containers keep their own forward code, which then runs on packed
tensors ``[K, batch, width]``. So a model whose ``forward`` treats leading dimensions as batch
dimensions packs without any code of its own (see ``template.py``).

What may differ between members: widths (every tensor is zero-padded to the widest member),
dropout rate, activation (among those with f(0) = 0), and of course the weights. Why padding is
exact: a padded unit has zero in-weights and zero bias, so its pre-activation is 0 for every
input; the activation keeps 0 at 0, dropout keeps 0, a LayerNorm normalizes over the member's
real units only (mask below) with zero gain and bias on the padded ones; the next layer's
weights from a padded unit are 0, so it adds nothing to any real unit. The same zeros make
every gradient reaching a padded weight exactly 0 (its input or its output gradient is 0), and
AdamW leaves a weight with zero gradient and zero moments at 0. A member with an activation
that moves 0 (sigmoid) packs only with members of identical shapes. Each pack checks on
construction that it reproduces every member's own output.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from router_models.base_model import BaseModel
from router_models.packed_leaves import (  # noqa: F401  (the leaves register themselves)
    LEAVES,
    NotPackable,
    PackedActivation,
    PackedLeaf,
    activation_key,
    register_packed_leaf,
)

# -- signatures -----------------------------------------------------------------------------


def _own_tensors(module: nn.Module) -> list[str]:
    return [n for n, _ in module.named_parameters(recurse=False)] + [
        n for n, _ in module.named_buffers(recurse=False)
    ]


def pack_signature(model: BaseModel) -> tuple[Any, ...]:
    """What two models must share to be packed together; widths are left out where padding is
    exact. Works on models built on the meta device (nothing allocated).

    Raises:
        NotPackable: The model holds a module that no packed leaf handles; the message names it.
    """
    parts: list[Any] = [type(model).__name__]
    exact_padding = True
    for path, module in model.named_modules():
        if module is model:
            extra = sorted(set(_own_tensors(model)) - {"input_mean", "input_std"})
            if extra:
                raise NotPackable(
                    f"model_type {model.model_type!r} cannot be packed: the model itself holds "
                    f"{', '.join(extra)}; put tensors in Linear, LayerNorm, Embedding or GaussianNoise "
                    "modules (see router_models/template.py)"
                )
            continue
        leaf = LEAVES.get(type(module))
        if leaf is not None:
            parts.append((path, leaf.signature(module)))
            exact_padding &= leaf.zero_preserving(module)
        elif _own_tensors(module):
            raise NotPackable(
                f"model_type {model.model_type!r} cannot be packed: {path} ({type(module).__name__}) "
                "holds its own tensors and no packed leaf handles it; build it from Linear, "
                "LayerNorm, Dropout, activations, Embedding or GaussianNoise (see router_models/template.py)"
            )
        else:
            parts.append((path, type(module).__name__))
    if not exact_padding:
        # An activation that moves 0 would make padded units nonzero: no padding at all.
        parts.append(("shapes", tuple((n, tuple(p.shape)) for n, p in model.named_parameters())))
    return tuple(parts)


def _first_difference(a: tuple[Any, ...], b: tuple[Any, ...]) -> str:
    for x, y in zip(a, b):
        if x != y:
            return f"{x} vs {y}"
    return f"{len(a)} vs {len(b)} modules"


# -- the pack -------------------------------------------------------------------------------


class PackedRouter(nn.Module):
    """K member routers as one module: ``forward(x [B, d]) -> logits [K, B, num_models]``.

    Args:
        members: Models of one structure (see :func:`pack_signature`), same input
            standardization; their weights are copied, they are not changed.
        verify: Check that the pack reproduces each member's own output (eval mode).

    Raises:
        NotPackable: If a member cannot be packed, or the members differ in structure.
    """

    def __init__(self, members: Sequence[BaseModel], verify: bool = True) -> None:
        super().__init__()
        if not members:
            raise NotPackable("a pack needs at least one member")
        signatures = [pack_signature(m) for m in members]
        for k, s in enumerate(signatures[1:], 1):
            if s != signatures[0]:
                raise NotPackable(
                    f"pack members 0 and {k} differ in structure: {_first_difference(signatures[0], s)}"
                )
        self.member_type = members[0].model_type
        self.num_outputs = members[0].output_dim
        body = copy.deepcopy(members[0])
        self.leaves: dict[str, PackedLeaf] = {}
        for path, module in members[0].named_modules():
            leaf_cls = LEAVES.get(type(module))
            if leaf_cls is None or not path:
                continue
            packed = leaf_cls([m.get_submodule(path) for m in members])
            parent, _, name = path.rpartition(".")
            setattr(body.get_submodule(parent) if parent else body, name, packed)
            self.leaves[path] = packed
        self.body = body
        if verify:
            self.verify(members)

    @property
    def num_members(self) -> int:
        return next(iter(self.leaves.values())).num_members

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        out = self.body(x, tasks)
        return out if out.dim() == 3 else out.expand(self.num_members, *out.shape)

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s state dict in its own model's names and shapes (views)."""
        state = {name: b for name, b in self.body.named_buffers(recurse=False)}
        for path, leaf in self.leaves.items():
            state.update({f"{path}.{n}": t for n, t in leaf.unpack(k).items()})
        return state

    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at positions ``keep`` (pruned or failed ones leave).

        The packed parameters are replaced by new ones: an optimizer must be given them again.
        """
        idx = torch.as_tensor(list(keep), dtype=torch.long)
        for leaf in self.leaves.values():
            leaf.select(idx)

    @torch.no_grad()
    def verify(self, members: Sequence[BaseModel], atol: float = 1e-4, rtol: float = 1e-4) -> None:
        """Raise NotPackable unless every member's own output equals its slice of the pack's."""
        gen = torch.Generator().manual_seed(0)
        first = members[0]
        # Inputs like the data: standard normal after the members' standardization.
        z = torch.randn(4, first.input_dim, generator=gen).to(first.input_std.device)
        x = first.input_mean + first.input_std * z
        modes = [m.training for m in members]
        self.eval()
        for m in members:
            m.eval()
        try:
            try:
                packed = self(x)
            except RuntimeError as exc:
                raise NotPackable(
                    f"model_type {members[0].model_type!r}: its forward fails on a pack "
                    f"({str(exc).splitlines()[0]}); it must treat leading dims as batch dims "
                    "(see router_models/template.py)"
                ) from exc
            for k, m in enumerate(members):
                own = m(x)
                diff = float(((packed[k] - own).abs() - rtol * own.abs()).max())
                if not diff <= atol:
                    raise NotPackable(
                        f"model_type {m.model_type!r}: a pack does not reproduce member {k}'s output "
                        f"(max difference {diff:.2e}); its forward must treat leading dims as batch "
                        "dims (see router_models/template.py)"
                    )
        finally:
            self.train()
            for m, mode in zip(members, modes):
                m.train(mode)
