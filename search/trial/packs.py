"""What may share a pack, and the pack a training loop drives: K models and their optimizer.

A pack of one is the plain path: the member's own model and torch's fused AdamW, exactly as a
lone trial always trained. A pack of several is a :class:`PackedRouter` (weights stacked on a
member axis) with :class:`PackedAdamW` (an lr and weight decay per member). The loop in
``train.py`` sees the same small interface for both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from router_models import BaseModel, ConfigError, create_model, read_pipeline_config
from router_models.packing import NotPackable, PackedRouter, pack_signature
from search.trial.optim import PackedAdamW

# train_config keys a member may set for itself; every other one must be equal in a pack.
PER_MEMBER_TRAIN_KEYS = ("lr", "weight_decay")


def meta_model(config: Mapping[str, Any], embedding_dim: int, num_models: int) -> BaseModel:
    """The model a config describes, built on the meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        return create_model(config, embedding_dim, num_models)


def pack_key(
    config: Mapping[str, Any], train_config: Mapping[str, Any], embedding_dim: int, num_models: int
) -> tuple[Any, ...]:
    """Configs with equal keys can be trained as one pack (widths may differ).

    Raises:
        ConfigError: On a config that does not build. NotPackable: On a model that cannot pack.
    """
    shared = tuple(
        sorted((k, json.dumps(v)) for k, v in train_config.items() if k not in PER_MEMBER_TRAIN_KEYS)
    )
    model = meta_model(config, embedding_dim, num_models)
    return (model.model_type, shared, pack_signature(model))


def incompatibility(
    configs: Sequence[Mapping[str, Any]],
    train_configs: Sequence[Mapping[str, Any]],
    names: Sequence[str],
    embedding_dim: int,
    num_models: int,
) -> str | None:
    """None when all configs can share a pack, else one line naming the first key that differs."""
    keys = [pack_key(c, t, embedding_dim, num_models) for c, t in zip(configs, train_configs)]
    first = read_pipeline_config(configs[0])
    for i in range(1, len(configs)):
        if keys[i] == keys[0]:
            continue
        other = read_pipeline_config(configs[i])
        where = f"{names[0]} and {names[i]}"
        if first["model_type"] != other["model_type"]:
            return f"{where} differ in model_type ({first['model_type']} vs {other['model_type']})"
        for k, v in train_configs[0].items():
            if k not in PER_MEMBER_TRAIN_KEYS and train_configs[i].get(k) != v:
                return f"{where} differ in train_config.{k} ({v!r} vs {train_configs[i].get(k)!r})"
        a, b = first.get("model_config", {}), other.get("model_config", {})
        for k in sorted(set(a) | set(b)):
            if a.get(k) == b.get(k):
                continue
            # Does this key alone change the structure? Then it is the one that differs.
            swapped = {
                **first,
                "model_config": {**a, k: b[k]} if k in b else {x: y for x, y in a.items() if x != k},
            }
            if pack_key(swapped, train_configs[0], embedding_dim, num_models) != keys[0]:
                return (
                    f"{where} differ in model_config.{k} ({a.get(k)!r} vs {b.get(k)!r}), which "
                    "changes the model's structure; a pack needs one structure"
                )
        return f"{where} differ in the model's structure; a pack needs one structure"
    return None


class _Group:
    """Members trained as one module: a fused PackedRouter with PackedAdamW, or (one member)
    its own model with torch's fused AdamW, exactly as a lone trial always trained."""

    def __init__(
        self,
        models: Sequence[BaseModel],
        lrs: Sequence[float],
        weight_decays: Sequence[float],
        device: torch.device,
    ) -> None:
        self.size = len(models)
        self.packed: PackedRouter | None = None
        if self.size > 1:
            self.packed = PackedRouter(models).to(device)
            self.module: torch.nn.Module = self.packed
            self.optimizer: Any = PackedAdamW(self.module.parameters(), lrs, weight_decays)
        else:
            self.module = models[0].to(device)
            self.optimizer = torch.optim.AdamW(
                self.module.parameters(), lr=lrs[0], weight_decay=weight_decays[0], fused=True
            )
        # Each member's best weights so far: whole packed tensors, so keeping the best of any
        # members costs a few kernels per tensor, not a few per member.
        self.best = [p.detach().clone() for p in self.module.parameters()]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        return out if self.packed is not None else out.unsqueeze(0)

    def remember(self, positions: Sequence[int]) -> None:
        params = [p.detach() for p in self.module.parameters()]
        if self.packed is None:
            self.best = [p.clone() for p in params]
            return
        idx = torch.as_tensor(list(positions), dtype=torch.long, device=params[0].device)
        for best, p in zip(self.best, params):
            best[idx] = p[idx]

    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        params = list(self.module.parameters())
        current = [p.data for p in params]
        for p, best in zip(params, self.best):
            p.data = best
        try:
            state = self.packed.member_state_dict(position) if self.packed else self.module.state_dict()
            return {n: t.detach().clone() for n, t in state.items()}
        finally:
            for p, data in zip(params, current):
                p.data = data

    def select(self, keep: Sequence[int]) -> None:
        assert self.packed is not None
        idx = torch.as_tensor(list(keep), dtype=torch.long)
        self.packed.select(keep)
        self.optimizer.select(idx, self.packed.parameters())
        self.best = [b[idx.to(b.device)] for b in self.best]
        self.size = len(keep)


def _shapes(model: BaseModel) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(p.shape) for p in model.parameters())


class Pack:
    """K models trained together: ``pack(x [B, d]) -> logits [K, B, num_models]``.

    Members are fused into one module (:class:`PackedRouter`). With ``pad`` (a GPU, where a step
    is bound by kernel launches) members of other widths are zero-padded into one group; without
    it (a CPU, where a step is bound by arithmetic and a narrow member padded to the widest would
    cost what the widest costs) members of equal shapes form a group each, trained side by side
    on the same batches. A group of one is the member's own model.

    Args:
        models: The members' own models (standardization set), ordered so that members of equal
            shapes are adjacent when ``pad`` is off; they are copied, not changed (except a
            group of one, which trains in place).
        lrs: Learning rate of each member.
        weight_decays: Weight decay of each member.
        device: Where the pack trains.
        pad: One padded group, or one group per set of shapes.
    """

    def __init__(
        self,
        models: Sequence[BaseModel],
        lrs: Sequence[float],
        weight_decays: Sequence[float],
        device: torch.device,
        pad: bool = True,
    ) -> None:
        bounds = [0]
        for k in range(1, len(models)):
            if not pad and _shapes(models[k]) != _shapes(models[k - 1]):
                bounds.append(k)
        bounds.append(len(models))
        self.groups = [
            _Group(models[a:b], lrs[a:b], weight_decays[a:b], device) for a, b in zip(bounds[:-1], bounds[1:])
        ]
        self.module = torch.nn.ModuleList(g.module for g in self.groups)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outs = [g(x) for g in self.groups]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def zero_grad(self) -> None:
        for g in self.groups:
            g.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        for g in self.groups:
            g.optimizer.step()

    def _locate(self, position: int) -> tuple[_Group, int]:
        for g in self.groups:
            if position < g.size:
                return g, position
            position -= g.size
        raise IndexError(f"no member at position {position}")

    def remember(self, positions: Sequence[int]) -> None:
        """The current weights of the members at ``positions`` are their best so far."""
        by_group: dict[int, list[int]] = {}
        for pos in positions:
            g, local = self._locate(pos)
            by_group.setdefault(id(g), []).append(local)
        for g in self.groups:
            if id(g) in by_group:
                g.remember(by_group[id(g)])

    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        """The best weights of the member at ``position``, in its own model's names (copies)."""
        g, local = self._locate(position)
        return g.best_state(local)

    def select(self, keep: Sequence[int]) -> None:
        """Keep the members at positions ``keep`` (in order); the others stop costing compute."""
        kept: list[_Group] = []
        start = 0
        for g in self.groups:
            local = [p - start for p in keep if start <= p < start + g.size]
            start += g.size
            if local and len(local) < g.size:
                g.select(local)
            if local:
                kept.append(g)
        self.groups = kept
        self.module = torch.nn.ModuleList(g.module for g in self.groups)


def check_packable(build: Callable[[], BaseModel]) -> None:
    """Raise ConfigError (one line) unless two models from ``build()`` pack exactly."""
    try:
        PackedRouter([build(), build()])
    except NotPackable as exc:
        raise ConfigError(str(exc)) from None
