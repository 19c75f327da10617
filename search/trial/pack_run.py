"""One pack in training: its members, its cohorts and the data on the device, with the steps the
training loop (``train.train_pack``) takes in order: add a cohort, train an epoch, settle a
report, and at the end the results.

A cohort is the members that joined the pack together: one :class:`Pack`, trained at its own
epoch on its own batch order; the first cohort is the pack's first members. A member has one id
from start to end (the caller's, such as its trial number; else its position: the configs
first, then joiners in the order they joined), in every report and callback; a member whose
config did not build is FAILED from the start and said in the next report.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from router_models import ConfigError
from search import metrics as M
from search.data import RouterData
from search.metrics.direction import Direction
from search.routing.inference import latency_ms, predict
from search.trial.config import Fitter
from search.trial.fidelity import Fidelity
from search.trial.members import MemberState, build_members, judge, result_of
from search.trial.outcomes import EpochReport, Joiner, Status, TrainResult
from search.trial.packs import Pack


@dataclass
class Cohort:
    """Members that joined the pack together: one :class:`Pack`, trained at its own epoch on
    its own batch order (``gen``)."""

    members: list[MemberState]
    pack: Pack
    gen: torch.Generator
    epoch: int = 0

    @property
    def epochs(self) -> int:
        return int(self.members[0].train_config["epochs"])

    @property
    def batch_size(self) -> int:
        return int(self.members[0].train_config["batch_size"])


def device_arrays(data: RouterData, device: torch.device) -> tuple[torch.Tensor, ...]:
    with warnings.catch_warnings():
        # Object-store arrays are read-only; we never write to them.
        warnings.filterwarnings("ignore", message=".*not writable.*")
        return tuple(torch.from_numpy(a).to(device) for a in (data.X, data.Y, data.mask))


@torch.no_grad()
def column_stats(X: torch.Tensor, rows: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, ...]:
    """Mean and std of ``X[rows]`` per column, in chunks: the rows are never copied at once."""
    total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
    squares = torch.zeros_like(total)
    for i in range(0, rows.numel(), chunk):
        block = X[rows[i : i + chunk]].double()
        total += block.sum(0)
        squares += (block * block).sum(0)
    n = max(rows.numel(), 1)
    mean = total / n
    var = (squares / n - mean * mean).clamp_min(0.0) * n / max(n - 1, 1)
    return mean.float(), var.sqrt().float()


def train_epoch(
    pack: Pack,
    X: torch.Tensor,
    Y: torch.Tensor,
    mask: torch.Tensor,
    perm: torch.Tensor,
    batch_size: int,
    T: torch.Tensor | None = None,
) -> list[float]:
    """One pass over ``perm`` (global question indices; ``T``: each question's task); each
    live member's mean train loss. A pack of fitted members takes no step: its loss is
    measured in eval mode."""
    if not pack.trains:
        with torch.no_grad():
            logits = predict(pack, X[perm], tasks=T[perm] if T is not None else None)
            return M.masked_bce_members(logits, Y[perm], mask[perm]).tolist()
    pack.train()
    device = X.device
    total = torch.zeros(len(pack.live), device=device)
    for start in range(0, perm.numel(), batch_size):
        idx = perm[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = pack(X[idx], T[idx] if T is not None else None)
        # Summed, not averaged: each member gets exactly the gradient of its own loss.
        losses = M.masked_bce_members(logits, Y[idx], mask[idx])
        pack.zero_grad()
        losses.sum().backward()
        pack.step()
        total += losses.detach() * idx.numel()
    return (total / perm.numel()).tolist()  # one sync per epoch, not per batch


class PackRun:
    """One pack in training (see the module doc).

    Args:
        data: The data; its train split trains, val selects.
        device: Where the data and the pack live for the whole run.
        metric: Picks each member's best epoch.
        epochs: Overrides every member's train_config.epochs when given.
        pad: Fuse members of other widths by zero-padding, or train each set of equal shapes as
            its own fused group (see ``packs.Pack``).
        fidelity: What each epoch trains on.
        latency: Also measure each member's ``router_latency_ms`` once, as it would serve alone.
    """

    def __init__(
        self,
        data: RouterData,
        device: torch.device,
        metric: str,
        epochs: int | None,
        pad: bool,
        fidelity: Fidelity,
        latency: bool,
    ) -> None:
        self.data, self.device, self.metric, self.epochs = data, device, metric, epochs
        self.pad, self.fidelity, self.latency = pad, fidelity, latency
        self.direction = Direction.of(metric)
        self.members: dict[int, MemberState] = {}  # by id, in the order they came
        self.cohorts: list[Cohort] = []
        self.unsaid: dict[int, str] = {}  # members that failed to build: said in the next report
        self.pack_epoch = 0
        # -- data: on the device once, batched by index ---------------------------------------
        # On CPU the arrays are used in place (zero-copy from the object store); batches gather
        # rows by global question index, so no per-split copy of the embeddings is made.
        self.X, self.Y, self.mask = device_arrays(data, device)
        tasks = data.tasks
        self.T = torch.from_numpy(tasks).long().to(device) if tasks is not None else None
        self.train_idx = fidelity.order(torch.from_numpy(data.splits["train"]).to(device))
        val_idx = torch.from_numpy(data.splits["val"]).to(device)
        self.Xva, self.Yva, self.Mva = self.X[val_idx], self.Y[val_idx], self.mask[val_idx]
        self.Tva = self.T[val_idx] if self.T is not None else None
        self.fitter = Fitter(data)
        # With costs, each epoch also scores every member's accuracy-cost curve on val (val_aiq).
        self.val_cost = torch.from_numpy(data.split_cost("val")) if data.has_costs else None
        self.mean_cost = torch.from_numpy(data.mean_cost()) if data.has_costs else None
        self.mean, self.std = column_stats(self.X, self.train_idx)

    @property
    def training(self) -> bool:
        """Whether any member is still training."""
        return bool(self.cohorts)

    # -- add a cohort --------------------------------------------------------------------------
    def add(
        self,
        configs: Sequence[Any],
        seeds: Sequence[int],
        names: Sequence[str] | None,
        ids: Sequence[int | None] | None = None,
    ) -> None:
        """Members for ``configs`` join as one cohort (``ids``; a None one, or none given: the
        next position). One whose config does not build fails alone (said in the next report);
        members that cannot share one module train as one cohort each.

        Raises:
            ConfigError: The first members cannot share a pack (the pack's configs differ), or
                an id is taken.
        """
        first = not self.members
        given = list(ids) if ids is not None else [None] * len(configs)
        chosen = [i if i is not None else len(self.members) + k for k, i in enumerate(given)]
        if len(set(chosen)) != len(chosen) or set(chosen) & set(self.members):
            raise ConfigError(f"member ids must be new and distinct, got {chosen}")
        try:
            new = build_members(configs, self.data, seeds, self.epochs, self.device, names, chosen)
        except ConfigError:
            if first:
                raise
            for k in range(len(configs)):  # joiners that cannot share one module: one cohort each
                self.add([configs[k]], [seeds[k]], [names[k]] if names else None, [chosen[k]])
            return
        for m in new:
            self.members[m.id] = m
            if m.status == Status.FAILED:
                self.unsaid[m.id] = m.error or "failed"
        built = [m for m in new if m.status == Status.TRAINING]
        if built:
            self.cohorts.append(self._cohort(built, built[0].seed))

    def _cohort(self, new: list[MemberState], seed: int) -> Cohort:
        for m in new:
            assert m.model is not None
            m.model.set_input_normalization(self.mean.cpu(), self.std.cpu())  # part of the saved router
            self.fitter.fit(m.model)  # its prior (and a kNN router's references): one step, on train
            m.arch = {"param_count": float(sum(p.numel() for p in m.model.parameters()))}
            if self.latency:  # a copy: the pack may take the model itself over
                alone = copy.deepcopy(m.model).to(self.device)
                m.arch["router_latency_ms"] = latency_ms(alone, self.Xva[:1])
            if m.model.fitted:
                m.train_config["epochs"] = 1  # nothing more to learn after its one step
        pack = Pack(
            [m.model for m in new if m.model is not None],
            [m.train_config["lr"] for m in new],
            [m.train_config["weight_decay"] for m in new],
            self.device,
            pad=self.pad,
            indices=[m.id for m in new],
        )
        return Cohort(new, pack, torch.Generator(device="cpu").manual_seed(seed))

    # -- train an epoch ------------------------------------------------------------------------
    def train(self) -> EpochReport:
        """Each cohort one epoch (its own, on its own rows and batch order), evaluated on val and
        judged: the epoch's report (members that failed to build since the last one included)."""
        self.pack_epoch += 1
        rep = EpochReport(self.pack_epoch, {}, dict(self.unsaid))
        self.unsaid.clear()
        for c in self.cohorts:
            c.epoch += 1
            live = [self.members[k] for k in c.pack.live]
            rows_of = self.fidelity.rows(self.train_idx, c.epoch, c.gen)
            losses = train_epoch(c.pack, self.X, self.Y, self.mask, rows_of, c.batch_size, self.T)
            predicted = predict(c.pack, self.Xva, tasks=self.Tva)
            val = M.evaluate_members(predicted, self.Yva, self.Mva, self.val_cost, self.mean_cost)
            rows = [
                {"train_loss": loss, **{f"val_{k}": v for k, v in row.items()}, **m.arch}
                for loss, row, m in zip(losses, val, live)
            ]
            c.pack.remember(judge(live, rows, c.epoch, self.metric, rep))
            rep.steps.update({m.id: c.epoch for m in live})
        return rep

    # -- settle a report -----------------------------------------------------------------------
    def settle(
        self, rep: EpochReport, stop: set[int], done: Callable[[int, TrainResult], None] | None = None
    ) -> None:
        """Members that failed (in ``rep``), were told to stop (``stop``) or ran every epoch
        leave the pack; ``done`` hears of each that completed, as it completes."""
        for c in list(self.cohorts):
            live = [self.members[k] for k in c.pack.live]
            for m in live:
                if m.id in rep.failed:
                    m.status, m.error = Status.FAILED, rep.failed[m.id]
                elif m.id in stop:
                    m.status, m.state = Status.STOPPED, c.pack.best_state(m.id)
                elif c.epoch >= c.epochs:  # ran every epoch
                    m.status, m.state = Status.COMPLETE, c.pack.best_state(m.id)
                    if done is not None:
                        done(m.id, result_of(m, self.direction))
            leaving = [m.id for m in live if m.status != Status.TRAINING]
            if len(leaving) == len(live):
                self.cohorts.remove(c)
            elif leaving:
                c.pack.drop(leaving)

    def join(self, joiners: Sequence[Joiner]) -> None:
        """New members take the freed slots and start from epoch 0, as a cohort of their own."""
        if joiners:
            configs, seeds = [j.config for j in joiners], [j.seed for j in joiners]
            self.add(configs, seeds, [j.name for j in joiners], [j.id for j in joiners])

    # -- results -------------------------------------------------------------------------------
    def results(self) -> list[TrainResult]:
        """One result per member, in the order they came (the configs, then the joiners)."""
        return [result_of(m, self.direction) for m in self.members.values()]
