"""The training loop: one config or a pack of K, one device, masked BCE, on-device index batching.

``train_pack`` trains K compatible configs as one pack (see ``packs.py``); ``train_router`` is
the pack of one. Members share the data and the batch order; each keeps its own init seed,
learning rate, weight decay, dropout, best epoch, and fate (a :class:`Status`).

The loop, in phases: build the members (``members.build_members``), put the data on the device once,
then per epoch train (:func:`_train_epoch`), evaluate on val, judge each member
(``members.judge``: diverged members fail, improved ones keep their weights), report, and let the
members the report names (and the failed ones) leave the pack.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from router_models import ConfigError
from search import metrics as M
from search.data import RouterData
from search.metrics.direction import ARCHITECTURE_METRICS, COST_METRICS, METRIC_MODES, Direction
from search.routing.inference import latency_ms, predict
from search.trial.config import Fitter
from search.trial.fidelity import Fidelity
from search.trial.members import MemberState, build_members, judge, result_of
from search.trial.outcomes import (
    EpochReport,
    Joiner,
    MemberConfigError,
    PackReport,
    Refill,
    Status,
    TrainingDiverged,
    TrainResult,
)
from search.trial.packs import Pack

__all__ = [
    "EpochReport",
    "Joiner",
    "MemberConfigError",
    "PackReport",
    "Refill",
    "Status",
    "TrainResult",
    "TrainingDiverged",
    "column_stats",
    "train_pack",
    "train_router",
]


@dataclass
class _Cohort:
    """Members that joined the pack together: one :class:`Pack`, trained at its own epoch on
    its own batch order (``gen``); the first cohort is the pack's first members."""

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


def _device_arrays(data: RouterData, device: torch.device) -> tuple[torch.Tensor, ...]:
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


def train_router(
    config: Mapping[str, Any],
    data: RouterData,
    *,
    device: str | torch.device = "cpu",
    epochs: int | None = None,
    report: PackReport | None = None,
    seed: int = 0,
    metric: str = "val_loss",
) -> TrainResult:
    """Train one router config and keep its best epoch by ``metric``: a pack of one.

    Args:
        config: config.json dict (pipeline_config form, with optional train_config).
        data: The data; its train split trains, val selects.
        device: Where the data and model live for the whole run.
        epochs: Overrides train_config.epochs when given.
        report: As for ``train_pack`` (the member is index 0): returning ``[0]`` stops it.
        seed: Seeds init and batch order; CPU runs are reproducible.
        metric: One of METRIC_MODES, to pick the best epoch.

    Raises:
        ConfigError: On a bad config. TrainingDiverged: when the loss is NaN or inf.
    """
    try:
        (result,) = train_pack(
            [config], data, device=device, epochs=epochs, report=report, seeds=[seed], metric=metric
        )
    except MemberConfigError as exc:
        raise ConfigError(str(exc)) from exc
    if result.status == Status.FAILED:
        raise TrainingDiverged(result.error or "training failed")
    return result


def _train_epoch(
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


def train_pack(
    configs: Sequence[Mapping[str, Any]],
    data: RouterData,
    *,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    epochs: int | None = None,
    report: PackReport | None = None,
    metric: str = "val_loss",
    names: Sequence[str] | None = None,
    pad: bool | None = None,
    refill: Refill | None = None,
    fidelity: Fidelity | None = None,
    done: Callable[[int, TrainResult], None] | None = None,
    latency: bool = False,
) -> list[TrainResult]:
    """Train K compatible configs as one pack; each keeps its best epoch by ``metric``.

    Args:
        configs: K config.json dicts that may share a pack (see ``packable.incompatibility``).
        data: The data; its train split trains, val selects.
        seeds: One per member: seeds its init. The first also seeds the shared batch order.
        device: Where the data and the pack live for the whole run.
        epochs: Overrides every train_config.epochs when given.
        report: Called after each epoch (:data:`PackReport`); the members it returns stop
            training (STOPPED), as do members whose loss is NaN or inf (FAILED). The pack ends
            when no member is left.
        metric: One of METRIC_MODES, to pick each member's best epoch.
        names: How to name members in errors (default: their position).
        pad: Fuse members of other widths by zero-padding (default: on a GPU), or train each
            set of equal shapes as its own fused group (default: on a CPU); see ``packs.Pack``.
        refill: Called after each report (:data:`Refill`): its members join as a cohort of
            their own (own epochs, own batch order; a joiner whose config does not build fails
            in the next report). The pack ends when no member is left and none joins.
        fidelity: What each epoch trains on (``fidelity.Fidelity``; default: every question).
        done: Called with a member's index and result as soon as it has run every epoch (a
            pack that goes on with joiners need not hold a finished member back).
        latency: Also measure each member's ``router_latency_ms`` once, as it would serve alone
            (one query at a time, on ``device``; ``inference.latency_ms``) and report it with
            its ``param_count`` every epoch.

    Returns:
        One :class:`TrainResult` per member, configs first, then joiners in the order they
        joined.

    Raises:
        MemberConfigError: A member's config is bad (``index`` says which).
        ConfigError: The configs cannot share a pack (the message names the key that differs).
    """
    if metric not in METRIC_MODES:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(METRIC_MODES)}")
    if metric in ARCHITECTURE_METRICS:
        raise ConfigError(
            f"metric {metric} is the same at every epoch; pick the best epoch by one that training changes"
        )
    if metric in COST_METRICS and not data.has_costs:
        raise ConfigError(f"metric {metric} needs data with costs; {data.source} has none")
    if len(seeds) != len(configs) or not configs:
        raise ValueError(f"need one seed per config, got {len(seeds)} for {len(configs)}")
    device = torch.device(device)
    fidelity = fidelity or Fidelity()
    direction = Direction.of(metric)
    members = build_members(configs, data, seeds, epochs, device, names)

    # -- data: on the device once, batched by index ------------------------------------------
    # On CPU the arrays are used in place (zero-copy from the object store); batches gather rows
    # by global question index, so no per-split copy of the embeddings is made.
    X, Y, mask = _device_arrays(data, device)
    T = torch.from_numpy(data.tasks).long().to(device) if data.tasks is not None else None
    train_idx = fidelity.order(torch.from_numpy(data.splits["train"]).to(device))
    val_idx = torch.from_numpy(data.splits["val"]).to(device)
    Xva, Yva, Mva = X[val_idx], Y[val_idx], mask[val_idx]
    Tva = T[val_idx] if T is not None else None
    fitter = Fitter(data)
    # With costs, each epoch also scores every member's accuracy-cost curve on val (val_aiq).
    val_cost = torch.from_numpy(data.split_cost("val")) if data.has_costs else None
    mean_cost = torch.from_numpy(data.mean_cost()) if data.has_costs else None
    mean, std = column_stats(X, train_idx)
    pad = device.type == "cuda" if pad is None else pad

    def cohort(new: list[MemberState], seed: int) -> _Cohort:
        for m in new:
            m.model.set_input_normalization(mean.cpu(), std.cpu())  # part of the saved router
            fitter.fit(m.model)  # its prior (and a kNN router's references): one step, on train
            m.arch = {"param_count": float(sum(p.numel() for p in m.model.parameters()))}
            if latency:  # a copy: the pack may take the model itself over
                alone = copy.deepcopy(m.model).to(device)
                m.arch["router_latency_ms"] = latency_ms(alone, Xva[:1])
            if m.model.fitted:
                m.train_config["epochs"] = 1  # nothing more to learn after its one step
        pack = Pack(
            [m.model for m in new],
            [m.train_config["lr"] for m in new],
            [m.train_config["weight_decay"] for m in new],
            device,
            pad=pad,
            indices=[m.index for m in new],
        )
        return _Cohort(new, pack, torch.Generator(device="cpu").manual_seed(seed))

    def join(joiners: list[Joiner]) -> None:
        """Joiners take member indices on from the last, in order, and train as one cohort (or,
        when they cannot share one module, one cohort each); one whose config does not build
        fails alone, said in the next report."""
        base = len(members)
        members.extend(
            MemberState(base + i, members[0].model, {}, Status.FAILED) for i in range(len(joiners))
        )
        groups = [list(range(len(joiners)))]
        while groups:
            group = groups.pop(0)
            batch = [joiners[i] for i in group]
            try:
                new = build_members(
                    [j.config for j in batch],
                    data,
                    [j.seed for j in batch],
                    epochs,
                    device,
                    [j.name for j in batch],
                )
            except MemberConfigError as exc:
                i = group.pop(exc.index)
                members[base + i].error = failed_joiners[base + i] = f"ConfigError: {exc}"
                groups[:0] = [group] if group else []
                continue
            except ConfigError:  # they cannot share one module
                groups[:0] = [[i] for i in group]
                continue
            for i, m in zip(group, new):
                m.index = base + i
                members[base + i] = m
            cohorts.append(cohort(new, new[0].seed))

    cohorts = [cohort(members, seeds[0])]
    failed_joiners: dict[int, str] = {}  # joiners whose config did not build: said in the next report
    pack_epoch = 0
    while cohorts:
        pack_epoch += 1
        rep = EpochReport(pack_epoch, {}, dict(failed_joiners))
        failed_joiners.clear()
        for c in cohorts:  # each cohort its own epoch, on its own rows and batch order
            c.epoch += 1
            live = [members[k] for k in c.pack.live]
            train_loss = _train_epoch(
                c.pack, X, Y, mask, fidelity.rows(train_idx, c.epoch, c.gen), c.batch_size, T
            )
            val = M.evaluate_members(predict(c.pack, Xva, tasks=Tva), Yva, Mva, val_cost, mean_cost)
            rows = [
                {"train_loss": loss, **{f"val_{k}": v for k, v in row.items()}, **m.arch}
                for loss, row, m in zip(train_loss, val, live)
            ]
            c.pack.remember(judge(live, rows, c.epoch, metric, rep))
            rep.steps.update({m.index: c.epoch for m in live})

        # -- report; members that failed or were stopped leave the pack ----------------------
        stop = set(report(rep) if report is not None else ()) & set(rep.metrics)
        for c in list(cohorts):
            live = [members[k] for k in c.pack.live]
            for m in live:
                if m.index in rep.failed:
                    m.status, m.error = Status.FAILED, rep.failed[m.index]
                elif m.index in stop:
                    m.status, m.state = Status.STOPPED, c.pack.best_state(m.index)
                elif c.epoch >= c.epochs:  # ran every epoch
                    m.status, m.state = Status.COMPLETE, c.pack.best_state(m.index)
                    if done is not None:
                        done(m.index, result_of(m, direction))
            leaving = [m.index for m in live if m.status != Status.TRAINING]
            if len(leaving) == len(live):
                cohorts.remove(c)
            elif leaving:
                c.pack.drop(leaving)
        # -- refill: new members take the freed slots and start from epoch 0 -----------------
        joiners = list(refill()) if refill is not None else []
        if joiners:
            join(joiners)
    return [result_of(m, direction) for m in members]
