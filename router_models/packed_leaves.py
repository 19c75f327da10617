"""Packed leaves: each holds one kind of leaf module (Linear, LayerNorm, Dropout, an activation,
Embedding, GaussianNoise) for K members, their tensors stacked on a leading member axis and
zero-padded to the widest member (see ``packing.py`` for why padding is exact)."""

from __future__ import annotations

import abc
import copy
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from router_models.base_model import ACTIVATIONS
from router_models.layers import GaussianNoise
from router_models.prior import GroupPrior


class NotPackable(ValueError):
    """Models that cannot share a pack, or a model type that cannot be packed at all."""


L = TypeVar("L", bound=type["PackedLeaf"])
LEAVES: dict[type[nn.Module], type[PackedLeaf]] = {}


def register_packed_leaf(*module_types: type[nn.Module]) -> Callable[[L], L]:
    """Class decorator: ``cls`` packs modules of exactly these types (subclasses excluded)."""

    def decorator(cls: L) -> L:
        for t in module_types:
            LEAVES[t] = cls
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
    return tuple(repr(m) for m in model.modules() if LEAVES.get(type(m)) is PackedActivation)


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


@register_packed_leaf(GroupPrior)
class SharedPrior(PackedLeaf):
    """K members' priors, which are one: members with equal prior settings fitted on the same
    train split have equal tables and centroids, so the pack keeps one copy and every member
    reads it (its buffers are not trained)."""

    def __init__(self, members: Sequence[GroupPrior]) -> None:
        super().__init__()
        first = members[0]
        for k, m in enumerate(members[1:], 1):
            if not (torch.equal(m.table, first.table) and torch.equal(m.centroids, first.centroids)):
                raise NotPackable(f"pack members 0 and {k} have priors fitted apart (other tables)")
        self.inner = copy.deepcopy(first)
        self.count = len(members)

    @classmethod
    def signature(cls, module: nn.Module) -> tuple[Any, ...]:
        assert isinstance(module, GroupPrior)
        return ("prior", module.kind, module.groups, module.strength)

    @property
    def num_members(self) -> int:
        return self.count

    def assign(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        # packed inputs [K, B, d] share the rows of the pack's input: assign from one of them
        return self.inner.assign(x[0] if x.dim() == 3 else x, tasks)

    def probs(self, groups: torch.Tensor) -> torch.Tensor:
        return self.inner.probs(groups)

    def logits(self, groups: torch.Tensor) -> torch.Tensor:
        return self.inner.logits(groups)

    def unpack(self, k: int) -> dict[str, torch.Tensor]:
        return {"table": self.inner.table, "centroids": self.inner.centroids}

    def select(self, idx: torch.Tensor) -> None:
        self.count = int(idx.numel())
