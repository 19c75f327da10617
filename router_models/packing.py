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

import abc
import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from router_models.base_model import ACTIVATIONS, BaseModel
from router_models.layers import GaussianNoise


class NotPackable(ValueError):
    """Models that cannot share a pack, or a model type that cannot be packed at all."""


L = TypeVar("L", bound=type["PackedLeaf"])
_LEAVES: dict[type[nn.Module], type[PackedLeaf]] = {}


def register_packed_leaf(*module_types: type[nn.Module]) -> Callable[[L], L]:
    """Class decorator: ``cls`` packs modules of exactly these types (subclasses excluded)."""

    def decorator(cls: L) -> L:
        for t in module_types:
            _LEAVES[t] = cls
        return cls

    return decorator


def _rows(x: torch.Tensor, k: int) -> torch.Tensor:
    """A shared input ``[B, ...]`` (not yet packed) as ``[K, B, ...]``; packed input as is."""
    return x if x.dim() >= 3 else x.expand(k, *x.shape)


def _view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-member values ``[K, w]`` (or ``[K]``) shaped to broadcast over ``like`` ``[K, ..., w]``."""
    extra = like.dim() - t.dim()
    return t.reshape(t.shape[0], *([1] * extra), *t.shape[1:])


class PackedLeaf(nn.Module, abc.ABC):
    """One leaf module of K members, tensors stacked on dim 0."""

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        """What must be equal between members at this leaf (widths excluded)."""
        return (cls.__name__,)

    @classmethod
    def zero_preserving(cls, module: nn.Module) -> bool:
        """Whether a padded (all-zero) unit stays zero through this leaf."""
        return True

    @property
    @abc.abstractmethod
    def num_members(self) -> int:
        """K."""

    def unpack(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k``'s own tensors under its own names (views; clone to keep)."""
        return {}

    @abc.abstractmethod
    def select(self, idx: torch.Tensor) -> None:
        """Keep only the members at ``idx`` (in that order)."""


def _stack_padded(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    shape = [max(t.shape[d] for t in tensors) for d in range(tensors[0].dim())]
    out = tensors[0].new_zeros(len(tensors), *shape)
    for k, t in enumerate(tensors):
        region = tuple(slice(0, s) for s in t.shape)
        out[k][region] = t.detach()
    return out


def _keep(module: nn.Module, name: str, idx: torch.Tensor) -> None:
    """Replace parameter ``name`` by its members at ``idx``: a new Parameter, since autograd
    remembers the shape of the old one (an optimizer must take the new ones)."""
    old = getattr(module, name)
    if old is not None:
        new = nn.Parameter(old.detach()[idx.to(old.device)].contiguous(), requires_grad=old.requires_grad)
        setattr(module, name, new)


@register_packed_leaf(nn.Linear)
class PackedLinear(PackedLeaf):
    """K Linear layers as one batched matmul.

    Weights are stored ``[K, in, out]`` (``weight_io``): on CPU a batched matmul and its weight
    gradient run fastest that way. ``weight`` is the ``[K, out, in]`` view, like nn.Linear's.
    """

    def __init__(self, members: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.in_dims = [m.in_features for m in members]
        self.out_dims = [m.out_features for m in members]
        stacked = _stack_padded([m.weight for m in members])
        self.weight_io = nn.Parameter(stacked.transpose(1, 2).contiguous())
        self.bias: nn.Parameter | None = None
        if members[0].bias is not None:
            self.bias = nn.Parameter(_stack_padded([m.bias for m in members]))

    @property
    def weight(self) -> torch.Tensor:
        return self.weight_io.transpose(1, 2)

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        assert isinstance(module, nn.Linear)
        return ("linear", module.bias is not None)

    @property
    def num_members(self) -> int:
        return self.weight_io.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.num_members
        if x.dim() == 2:
            # The members' shared input, copied per member: a batched matmul's weight gradient
            # over a stride-0 (broadcast) input is several times slower than over a real one.
            x = x.expand(k, *x.shape).contiguous()
        lead = x.shape[1:-1]
        flat = x.reshape(k, -1, x.shape[-1])
        if self.bias is None:
            out = torch.bmm(flat, self.weight_io)
        else:
            out = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight_io)
        return out.reshape(k, *lead, out.shape[-1])

    def unpack(self, k: int) -> dict[str, torch.Tensor]:
        out = {"weight": self.weight_io[k, : self.in_dims[k], : self.out_dims[k]].t()}
        if self.bias is not None:
            out["bias"] = self.bias[k, : self.out_dims[k]]
        return out

    def select(self, idx: torch.Tensor) -> None:
        _keep(self, "weight_io", idx)
        _keep(self, "bias", idx)
        self.in_dims = [self.in_dims[i] for i in idx.tolist()]
        self.out_dims = [self.out_dims[i] for i in idx.tolist()]


@register_packed_leaf(nn.LayerNorm)
class PackedLayerNorm(PackedLeaf):
    """K LayerNorms over the last dim; each normalizes over its member's real units only."""

    mask: torch.Tensor

    def __init__(self, members: Sequence[nn.LayerNorm]) -> None:
        super().__init__()
        self.eps = members[0].eps
        self.widths = [m.normalized_shape[0] for m in members]
        width = max(self.widths)
        mask = torch.zeros(len(members), width)
        for k, w in enumerate(self.widths):
            mask[k, :w] = 1.0
        self.register_buffer("mask", mask)
        ones = [torch.ones(w) for w in self.widths]
        zeros = [torch.zeros(w) for w in self.widths]
        weight = [m.weight if m.weight is not None else o for m, o in zip(members, ones)]
        bias = [m.bias if m.bias is not None else z for m, z in zip(members, zeros)]
        # Without affine, gain 1 and bias 0 on the real units, frozen; 0 on padded units.
        affine = members[0].weight is not None
        self.weight = nn.Parameter(_stack_padded(weight), requires_grad=affine)
        self.bias = nn.Parameter(_stack_padded(bias), requires_grad=members[0].bias is not None)
        self._names = [
            n for n, p in (("weight", members[0].weight), ("bias", members[0].bias)) if p is not None
        ]

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        assert isinstance(module, nn.LayerNorm)
        if len(module.normalized_shape) != 1:
            raise NotPackable(f"LayerNorm over {tuple(module.normalized_shape)}: only the last dim packs")
        return ("layernorm", module.eps, module.weight is not None, module.bias is not None)

    @property
    def num_members(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _rows(x, self.num_members)
        w, b = _view(self.weight, x), _view(self.bias, x)
        if len(set(self.widths)) == 1:
            return F.layer_norm(x, (x.shape[-1],), eps=self.eps) * w + b
        # Mean and variance over the member's real units: padded units take no part. In float32,
        # as LayerNorm runs under autocast.
        x = x.float()
        mask = _view(self.mask, x)
        n = mask.sum(-1, keepdim=True)
        mean = (x * mask).sum(-1, keepdim=True) / n
        centered = (x - mean) * mask
        var = (centered * centered).sum(-1, keepdim=True) / n
        return centered * torch.rsqrt(var + self.eps) * w + b

    def unpack(self, k: int) -> dict[str, torch.Tensor]:
        w = self.widths[k]
        return {name: getattr(self, name)[k, :w] for name in self._names}

    def select(self, idx: torch.Tensor) -> None:
        _keep(self, "weight", idx)
        _keep(self, "bias", idx)
        self.mask = self.mask[idx.to(self.mask.device)]
        self.widths = [self.widths[i] for i in idx.tolist()]


@register_packed_leaf(nn.Dropout)
class PackedDropout(PackedLeaf):
    """K dropouts, each with its own rate and its own mask."""

    p: torch.Tensor

    def __init__(self, members: Sequence[nn.Dropout]) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor([float(m.p) for m in members]))
        self.rates = [float(m.p) for m in members]

    @property
    def num_members(self) -> int:
        return len(self.rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or max(self.rates) == 0.0:
            return x
        if len(set(self.rates)) == 1:
            return F.dropout(x, self.rates[0], True)
        x = _rows(x, self.num_members)
        if x.device.type == "cpu":  # torch's own dropout per member: one pass each
            return torch.stack([F.dropout(x[k], p, True) for k, p in enumerate(self.rates)])
        # On a GPU a few kernels for all members, not one per member.
        keep = _view(1.0 - self.p, x).to(x.dtype)
        return x * (torch.rand_like(x) < keep) / keep

    def select(self, idx: torch.Tensor) -> None:
        self.p = self.p[idx.to(self.p.device)]
        self.rates = [self.rates[i] for i in idx.tolist()]


def _runs(groups: list[int]) -> list[tuple[int, int, int]]:
    """``(group, start, end)`` of each run of equal values in ``groups``."""
    runs: list[tuple[int, int, int]] = []
    for k, g in enumerate(groups):
        if runs and runs[-1][0] == g:
            runs[-1] = (g, runs[-1][1], k + 1)
        else:
            runs.append((g, k, k + 1))
    return runs


def activation_key(model: nn.Module) -> tuple[str, ...]:
    """The model's activations in order: members sorted by it keep each activation's members
    side by side in a pack, where slices replace gathers."""
    return tuple(repr(m) for m in model.modules() if _LEAVES.get(type(m)) is PackedActivation)


@register_packed_leaf(*{type(make()) for make in ACTIVATIONS.values()})
class PackedActivation(PackedLeaf):
    """K activations; members with the same one are applied together."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        reprs = [repr(m) for m in members]
        distinct = list(dict.fromkeys(reprs))
        self.groups = [distinct.index(r) for r in reprs]  # each member's activation, by index
        self.fns = nn.ModuleList(copy.deepcopy(members[reprs.index(r)]) for r in distinct)
        self._index: dict[torch.device, list[torch.Tensor]] = {}  # members of each, per device

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        return ("activation", cls.zero_preserving(module))

    @classmethod
    def zero_preserving(cls, module: nn.Module) -> bool:
        with torch.no_grad():
            return bool(module(torch.zeros(1)).abs().max() == 0)

    @property
    def num_members(self) -> int:
        return len(self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.fns) == 1:
            return self.fns[0](x)
        x = _rows(x, self.num_members)
        runs = _runs(self.groups)
        if len(runs) == len(self.fns):  # each activation's members side by side: slices
            return torch.cat([self.fns[g](x[a:b]) for g, a, b in runs])
        if x.device not in self._index:
            self._index[x.device] = [
                torch.tensor([k for k, c in enumerate(self.groups) if c == g], device=x.device)
                for g in range(len(self.fns))
            ]
        out = torch.empty_like(x)
        for fn, idx in zip(self.fns, self._index[x.device]):
            out[idx] = fn(x[idx])
        return out

    def select(self, idx: torch.Tensor) -> None:
        groups = [self.groups[i] for i in idx.tolist()]
        used = sorted(set(groups))
        self.fns = nn.ModuleList(self.fns[g] for g in used)
        self.groups = [used.index(g) for g in groups]
        self._index = {}


@register_packed_leaf(nn.Embedding)
class PackedEmbedding(PackedLeaf):
    """K embedding tables ``[K, num, dim]``, padded along dim."""

    def __init__(self, members: Sequence[nn.Embedding]) -> None:
        super().__init__()
        self.dims = [m.embedding_dim for m in members]
        self.weight = nn.Parameter(_stack_padded([m.weight for m in members]))

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        assert isinstance(module, nn.Embedding)
        if module.max_norm is not None or module.sparse:
            raise NotPackable("Embedding with max_norm or sparse gradients cannot be packed")
        return ("embedding", module.num_embeddings, module.padding_idx)

    @property
    def num_members(self) -> int:
        return self.weight.shape[0]

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight[:, idx]

    def unpack(self, k: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[k, :, : self.dims[k]]}

    def select(self, idx: torch.Tensor) -> None:
        _keep(self, "weight", idx)
        self.dims = [self.dims[i] for i in idx.tolist()]


@register_packed_leaf(GaussianNoise)
class PackedGaussianNoise(PackedLeaf):
    """K noise layers, each with its own std, noise only on the member's real units."""

    scale: torch.Tensor

    def __init__(self, members: Sequence[GaussianNoise]) -> None:
        super().__init__()
        self.stds = [float(m.std) for m in members]
        self.dims = [m.dim for m in members]
        mask = torch.zeros(len(members), max(self.dims))
        for k, (s, d) in enumerate(zip(self.stds, self.dims)):
            mask[k, :d] = s
        self.register_buffer("scale", mask)

    @property
    def num_members(self) -> int:
        return len(self.stds)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or max(self.stds) == 0.0:
            return x
        x = _rows(x, self.num_members)
        return x + torch.randn_like(x) * _view(self.scale, x).to(x.dtype)

    def select(self, idx: torch.Tensor) -> None:
        self.scale = self.scale[idx.to(self.scale.device)]
        self.stds = [self.stds[i] for i in idx.tolist()]
        self.dims = [self.dims[i] for i in idx.tolist()]


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
        leaf = _LEAVES.get(type(module))
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
            leaf_cls = _LEAVES.get(type(module))
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
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
                ) from None
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
