"""A pack: K members trained as one, and the groups it is made of.

Where the pieces of packing live (one concept each):
- ``router_models.packing.PackedRouter``: K models of one structure as one fused module.
- ``search.trial.optim.PackedAdamW``: AdamW with an lr and a weight decay per member.
- :class:`Group` (here): members trained as one module, fused (:class:`FusedGroup`) or a
  member alone (:class:`SoloGroup`, the plain path: its own model and torch's fused AdamW,
  bit for bit what a lone trial always trained), or a fitted member (:class:`FittedGroup`:
  kNN, group means; no parameters, nothing to step).
- :class:`Pack` (here): the groups of one pack; it owns the order of its members. Callers name
  members by their own index (0..K-1) and never see positions.
- ``search.trial.packable``: what may share a pack. ``search.trial.train``: the loop.
- ``search.driver.packer.Packer``: asks the study for packs; ``search.driver.control``: the
  driver's prune decisions back into running packs; ``search.trial.protocol``: what they say.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import torch

from router_models import BaseModel
from router_models.packing import PackedRouter, activation_key
from search.trial.optim import PackedAdamW


class Group(ABC):
    """Members trained as one module on the same batches. The :class:`Pack` calls
    ``forward`` each step (then ``zero_grad``/``step`` around the backward pass), ``remember``
    after each epoch's evaluation, ``best_state`` when a member leaves or the pack ends, and
    ``select`` when some (not all) of its members leave. Positions are local to the group."""

    module: torch.nn.Module

    def __init__(self, size: int) -> None:
        self.size = size

    @abstractmethod
    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[size, B, num_models]`` for a batch ``x`` of ``[B, d]`` (``tasks [B]``: each
        query's task, read by members with a task prior)."""

    @abstractmethod
    def zero_grad(self) -> None: ...

    @abstractmethod
    def step(self) -> None: ...

    @abstractmethod
    def remember(self, positions: Sequence[int]) -> None:
        """The current weights of the members at ``positions`` are their best so far."""

    @abstractmethod
    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        """The best weights of the member at ``position``, in its own model's names (copies)."""

    @abstractmethod
    def select(self, keep: Sequence[int]) -> None:
        """Keep only the members at ``keep`` (in order, not empty, fewer than ``size``)."""


class SoloGroup(Group):
    """One member alone: its own model and torch's fused AdamW."""

    def __init__(self, model: BaseModel, lr: float, weight_decay: float, device: torch.device) -> None:
        super().__init__(1)
        self.module = model.to(device)
        self.optimizer = torch.optim.AdamW(
            self.module.parameters(), lr=lr, weight_decay=weight_decay, fused=True
        )
        self.best = [p.detach().clone() for p in self.module.parameters()]

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        return self.module(x, tasks).unsqueeze(0)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.optimizer.step()

    def remember(self, positions: Sequence[int]) -> None:
        if positions:
            self.best = [p.detach().clone() for p in self.module.parameters()]

    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        with _weights(self.module, self.best):
            return {n: t.detach().clone() for n, t in self.module.state_dict().items()}

    def select(self, keep: Sequence[int]) -> None:
        raise ValueError("a member alone cannot keep some of its members: it stays or leaves whole")


class FusedGroup(Group):
    """Members of one structure fused into a :class:`PackedRouter`, trained by
    :class:`PackedAdamW`. The members' models are copied, not changed."""

    def __init__(
        self,
        models: Sequence[BaseModel],
        lrs: Sequence[float],
        weight_decays: Sequence[float],
        device: torch.device,
    ) -> None:
        super().__init__(len(models))
        self.module = self.packed = PackedRouter(models).to(device)
        self.optimizer = PackedAdamW(self.module.parameters(), lrs, weight_decays)
        # Each member's best weights so far: whole packed tensors, so keeping the best of any
        # members costs a few kernels per tensor, not a few per member.
        self.best = [p.detach().clone() for p in self.module.parameters()]

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        return self.packed(x, tasks)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        self.optimizer.step()

    def remember(self, positions: Sequence[int]) -> None:
        if not positions:
            return
        params = [p.detach() for p in self.module.parameters()]
        idx = torch.as_tensor(list(positions), dtype=torch.long, device=params[0].device)
        for best, p in zip(self.best, params):
            best[idx] = p[idx]

    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        with _weights(self.module, self.best):
            return {n: t.detach().clone() for n, t in self.packed.member_state_dict(position).items()}

    def select(self, keep: Sequence[int]) -> None:
        idx = torch.as_tensor(list(keep), dtype=torch.long)
        self.packed.select(keep)
        self.optimizer.select(idx, self.packed.parameters())
        self.best = [b[idx.to(b.device)] for b in self.best]
        self.size = len(keep)


class FittedGroup(Group):
    """One fitted member (kNN, group means: no parameters, fitted before training): it takes
    no step, and its best state is its state."""

    def __init__(self, model: BaseModel, device: torch.device) -> None:
        super().__init__(1)
        self.module = model.to(device)

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        return self.module(x, tasks).unsqueeze(0)

    def zero_grad(self) -> None:
        pass

    def step(self) -> None:
        pass

    def remember(self, positions: Sequence[int]) -> None:
        pass

    def best_state(self, position: int) -> dict[str, torch.Tensor]:
        return {n: t.detach().clone() for n, t in self.module.state_dict().items()}

    def select(self, keep: Sequence[int]) -> None:
        raise ValueError("a member alone cannot keep some of its members: it stays or leaves whole")


class _weights:
    """Within the block, ``module``'s parameters hold ``tensors`` (then their own again)."""

    def __init__(self, module: torch.nn.Module, tensors: Sequence[torch.Tensor]) -> None:
        self.params = list(module.parameters())
        self.tensors = tensors

    def __enter__(self) -> None:
        self.saved = [p.data for p in self.params]
        for p, t in zip(self.params, self.tensors):
            p.data = t

    def __exit__(self, *exc: object) -> None:
        for p, data in zip(self.params, self.saved):
            p.data = data


def make_group(
    models: Sequence[BaseModel], lrs: Sequence[float], weight_decays: Sequence[float], device: torch.device
) -> Group:
    """A member alone, or several fused; a fitted member is always alone."""
    if models[0].fitted:
        if len(models) > 1:
            raise ValueError("fitted members are not fused: one group each")
        return FittedGroup(models[0], device)
    if len(models) == 1:
        return SoloGroup(models[0], lrs[0], weight_decays[0], device)
    return FusedGroup(models, lrs, weight_decays, device)


def _shapes(model: BaseModel) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(p.shape) for p in model.parameters())


class Pack(torch.nn.Module):
    """K members trained together: ``pack(x [B, d]) -> logits [len(live), B, num_models]``,
    row ``r`` the logits of member ``live[r]``.

    The pack orders its members itself: members of equal shapes, and within them of equal
    activations, sit side by side. With ``pad`` (a GPU, where a step is bound by kernel
    launches) members of other widths are zero-padded into one group; without it (a CPU, where
    a step is bound by arithmetic and a narrow member padded to the widest would cost what the
    widest costs) members of equal shapes form a group each, trained side by side on the same
    batches.

    Args:
        models: The members' own models (standardization set), in the caller's order; a
            member's index is its position here (or ``indices``' entry). Fused members are
            copied; a member alone trains in place.
        lrs: Learning rate of each member. weight_decays: Weight decay of each member.
        device: Where the pack trains. pad: One padded group, or one group per set of shapes.
        indices: The members' indices (default ``0..K-1``): a pack that joins a running one
            numbers its members on after those already there.
    """

    def __init__(
        self,
        models: Sequence[BaseModel],
        lrs: Sequence[float],
        weight_decays: Sequence[float],
        device: torch.device,
        pad: bool = True,
        indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        name = list(indices) if indices is not None else list(range(len(models)))
        if len(name) != len(models) or len(set(name)) != len(name):
            raise ValueError(f"indices must name each of the {len(models)} members once, got {name}")
        shape = (lambda m: ()) if pad else _shapes
        order = sorted(range(len(models)), key=lambda k: (shape(models[k]), activation_key(models[k])))
        bounds = [0] + [
            i
            for i in range(1, len(order))
            if shape(models[order[i]]) != shape(models[order[i - 1]]) or models[order[i]].fitted
        ]
        bounds.append(len(order))
        self.groups: list[Group] = []
        self.members: list[list[int]] = []  # per group, its members' indices in position order
        for a, b in zip(bounds[:-1], bounds[1:]):
            ks = order[a:b]
            self.groups.append(
                make_group(
                    [models[k] for k in ks], [lrs[k] for k in ks], [weight_decays[k] for k in ks], device
                )
            )
            self.members.append([name[k] for k in ks])
        self.modules_ = torch.nn.ModuleList(g.module for g in self.groups)

    @property
    def trains(self) -> bool:
        """Whether any member takes gradient steps (fitted members do not)."""
        return any(not isinstance(g, FittedGroup) for g in self.groups)

    @property
    def live(self) -> list[int]:
        """The members still training, in the order of the pack's logits."""
        return [k for ks in self.members for k in ks]

    def forward(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        outs = [g.forward(x, tasks) for g in self.groups]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for g in self.groups:
            g.zero_grad()

    def step(self) -> None:
        for g in self.groups:
            g.step()

    def _where(self, member: int) -> tuple[Group, int]:
        for g, ks in zip(self.groups, self.members):
            if member in ks:
                return g, ks.index(member)
        raise KeyError(f"member {member} is not in the pack")

    def remember(self, members: Iterable[int]) -> None:
        """The current weights of ``members`` are their best so far."""
        chosen = set(members)
        for g, ks in zip(self.groups, self.members):
            g.remember([pos for pos, k in enumerate(ks) if k in chosen])

    def best_state(self, member: int) -> dict[str, torch.Tensor]:
        """The best weights of ``member``, in its own model's names (copies)."""
        g, pos = self._where(member)
        return g.best_state(pos)

    def drop(self, members: Iterable[int]) -> None:
        """``members`` leave the pack: they stop costing compute."""
        leaving = set(members)
        groups, kept_members = [], []
        for g, ks in zip(self.groups, self.members):
            keep = [pos for pos, k in enumerate(ks) if k not in leaving]
            if not keep:
                continue
            if len(keep) < len(ks):
                g.select(keep)
            groups.append(g)
            kept_members.append([ks[pos] for pos in keep])
        self.groups, self.members = groups, kept_members
        self.modules_ = torch.nn.ModuleList(g.module for g in self.groups)
