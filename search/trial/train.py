"""The training loop: one config or a pack of K, one device, masked BCE, on-device index batching.

``train_pack`` trains K compatible configs as one pack (see ``packs.py``); ``train_router`` is
the pack of one. Members share the data and the batch order; each keeps its own init seed,
learning rate, weight decay, dropout, best epoch, and fate (complete, stopped or failed).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from router_models import BaseModel, ConfigError
from router_models.packing import activation_key
from search import metrics as M
from search.data import RouterData
from search.inference import predict
from search.metrics.direction import METRIC_MODES, Direction
from search.train_config import resolve_train_config
from search.trial.config import build_model, check_fits
from search.trial.packs import Pack, incompatibility

Report = Callable[[dict[str, float], int], bool | None]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf."""


class MemberConfigError(ConfigError):
    """One member of a pack has a bad config; ``index`` says which."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


@dataclass
class TrainResult:
    """One member's outcome: its best model (weights loaded, eval mode) and its story.

    ``status`` is ``complete`` (all epochs), ``stopped`` (its report asked it to stop, e.g. a
    pruned trial) or ``failed`` (``error`` says why; ``model`` is None).
    """

    model: BaseModel | None
    best_epoch: int
    best_value: float
    epochs_run: int
    status: str = "complete"
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        return self.status == "stopped"


@dataclass
class EpochReport:
    """What a pack reports after an epoch: metrics of the members still training, and the
    members that failed in it (by member index in the pack)."""

    epoch: int
    metrics: dict[int, dict[str, float]]
    failed: dict[int, str] = field(default_factory=dict)


PackReport = Callable[[EpochReport], Iterable[int]]
"""Called after each epoch; returns the members to stop (e.g. pruned)."""


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
    report: Report | None = None,
    seed: int = 0,
    metric: str = "val_loss",
) -> TrainResult:
    """Train one router config and keep its best epoch by ``metric``: a pack of one.

    Args:
        config: config.json dict (pipeline_config form, with optional train_config).
        data: The data; its train split trains, val selects.
        device: Where the data and model live for the whole run.
        epochs: Overrides train_config.epochs when given.
        report: Called after each epoch with the metrics and the 1-based epoch; a truthy
            return stops training (a pruned trial).
        seed: Seeds init and batch order; CPU runs are reproducible.
        metric: One of METRIC_MODES, to pick the best epoch.

    Raises:
        ConfigError: On a bad config. TrainingDiverged: when the loss is NaN or inf.
    """

    def pack_report(r: EpochReport) -> list[int]:
        return [0] if report is not None and 0 in r.metrics and report(r.metrics[0], r.epoch) else []

    try:
        (result,) = train_pack(
            [config], data, device=device, epochs=epochs, report=pack_report, seeds=[seed], metric=metric
        )
    except MemberConfigError as exc:
        raise ConfigError(str(exc)) from None
    if result.status == "failed":
        raise TrainingDiverged(result.error or "training failed")
    return result


def _shape_key(model: BaseModel, pad: bool) -> tuple[tuple[int, ...], ...]:
    return () if pad else tuple(tuple(p.shape) for p in model.parameters())


def _member(index: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a ConfigError becomes member ``index``'s own."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        raise MemberConfigError(index, str(exc)) from None


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
) -> list[TrainResult]:
    """Train K compatible configs as one pack; each keeps its best epoch by ``metric``.

    Args:
        configs: K config.json dicts that may share a pack (see ``packs.incompatibility``).
        data: The data; its train split trains, val selects.
        seeds: One per member: seeds its init. The first also seeds the shared batch order.
        device: Where the data and the pack live for the whole run.
        epochs: Overrides every train_config.epochs when given.
        report: Called after each epoch with an :class:`EpochReport`; the members it returns
            stop training (status ``stopped``), as do members whose loss is NaN or inf
            (status ``failed``). The pack ends when no member is left.
        metric: One of METRIC_MODES, to pick each member's best epoch.
        names: How to name members in errors (default: their position).
        pad: Fuse members of other widths by zero-padding (default: on a GPU), or train each
            set of equal shapes as its own fused group (default: on a CPU); see ``packs.Pack``.

    Returns:
        One :class:`TrainResult` per config, in order.

    Raises:
        MemberConfigError: A member's config is bad (``index`` says which).
        ConfigError: The configs cannot share a pack (the message names the key that differs).
    """
    if metric not in METRIC_MODES:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(METRIC_MODES)}")
    if metric == "val_aiq" and not data.has_costs:
        raise ConfigError(f"metric val_aiq needs data with costs; {data.source} has none")
    if len(seeds) != len(configs) or not configs:
        raise ValueError(f"need one seed per config, got {len(seeds)} for {len(configs)}")
    k_all = len(configs)
    tcs = [_member(k, resolve_train_config, c, epochs) for k, c in enumerate(configs)]
    device = torch.device(device)
    for k, c in enumerate(configs):  # a member that does not build, or would not fit, fails alone
        _member(k, check_fits, _member(k, build_model, c, data, meta=True), device)
    if k_all > 1:
        problem = incompatibility(
            configs, tcs, names or [f"config {i}" for i in range(k_all)], data.embedding_dim, data.num_models
        )
        if problem:
            raise ConfigError(problem)
    models = []
    for k, (c, seed) in enumerate(zip(configs, seeds)):
        torch.manual_seed(seed)  # each member's init is what it would be alone
        models.append(_member(k, build_model, c, data))

    # -- data: on the device once, batched by index ------------------------------------------
    # On CPU the arrays are used in place (zero-copy from the object store); batches gather rows
    # by global question index, so no per-split copy of the embeddings is made.
    X, Y, mask = _device_arrays(data, device)
    train_idx = torch.from_numpy(data.splits["train"]).to(device)
    val_idx = torch.from_numpy(data.splits["val"]).to(device)
    Xva, Yva, Mva = X[val_idx], Y[val_idx], mask[val_idx]
    # With costs, each epoch also scores every member's accuracy-cost curve on val (val_aiq).
    val_cost = torch.from_numpy(data.split_cost("val")) if data.has_costs else None
    mean_cost = torch.from_numpy(data.mean_cost()) if data.has_costs else None
    mean, std = column_stats(X, train_idx)
    for model in models:
        model.set_input_normalization(mean.cpu(), std.cpu())  # part of the saved router
    # Members of equal shapes, and within them of equal activations, sit side by side in the
    # pack: the groups a CPU pack trains, and cheaper activations.
    pad = device.type == "cuda" if pad is None else pad
    live = sorted(range(k_all), key=lambda k: (_shape_key(models[k], pad), activation_key(models[k])))
    pack = Pack(
        [models[k] for k in live],
        [tcs[k]["lr"] for k in live],
        [tcs[k]["weight_decay"] for k in live],
        device,
        pad=pad,
    )
    gen = torch.Generator(device="cpu").manual_seed(seeds[0])
    use_bf16 = device.type == "cuda"
    n, bs, n_epochs = train_idx.numel(), tcs[0]["batch_size"], tcs[0]["epochs"]
    direction = Direction.of(metric)

    best = [(math.inf, 0)] * k_all  # each member's best value (as a key: lower is better) and epoch
    states: dict[int, dict[str, torch.Tensor]] = {}  # best weights of members that left
    history: list[list[dict[str, float]]] = [[] for _ in range(k_all)]
    status = ["complete"] * k_all
    errors: list[str | None] = [None] * k_all
    for epoch in range(1, n_epochs + 1):
        # -- train one epoch -----------------------------------------------------------------
        pack.module.train()
        perm = train_idx[torch.randperm(n, generator=gen).to(device)]
        total = torch.zeros(len(live), device=device)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = pack(X[idx])
            # Summed, not averaged: each member gets exactly the gradient of its own loss.
            losses = M.masked_bce_members(logits, Y[idx], mask[idx])
            pack.zero_grad()
            losses.sum().backward()
            pack.step()
            total += losses.detach() * idx.numel()
        train_loss = (total / n).tolist()  # one sync per epoch, not per batch

        # -- evaluate on val -----------------------------------------------------------------
        val = M.evaluate_members(predict(pack, Xva), Yva, Mva, val_cost, mean_cost)
        rep = EpochReport(epoch, {})
        improved = []
        for pos, k in enumerate(live):
            metrics = {"train_loss": train_loss[pos], **{f"val_{key}": v for key, v in val[pos].items()}}
            if not math.isfinite(metrics["train_loss"]):
                rep.failed[k] = (
                    f"TrainingDiverged: training loss became {metrics['train_loss']} at epoch {epoch}"
                )
                continue
            if not math.isfinite(metrics["val_loss"]):
                rep.failed[k] = (
                    f"TrainingDiverged: validation loss became {metrics['val_loss']} at epoch {epoch}"
                )
                continue
            history[k].append({"epoch": epoch, **metrics})
            rep.metrics[k] = metrics
            # -- keep the member's best state ------------------------------------------------
            if direction.key(metrics[metric]) < best[k][0]:
                best[k] = (direction.key(metrics[metric]), epoch)
                improved.append(pos)
        pack.remember(improved)

        # -- report; members that failed or were stopped leave the pack ----------------------
        stop = set(report(rep) if report is not None else ()) & set(rep.metrics)
        for k in rep.failed:
            status[k], errors[k] = "failed", rep.failed[k]
        for k in stop:
            status[k] = "stopped"
        keep = [pos for pos, k in enumerate(live) if k in rep.metrics and k not in stop]
        for pos, k in enumerate(live):
            if k in stop:
                states[k] = pack.best_state(pos)
        if not keep:
            break
        if len(keep) < len(live):
            pack.select(keep)
            live = [live[pos] for pos in keep]
    else:
        states.update({k: pack.best_state(pos) for pos, k in enumerate(live)})

    results = []
    for k, model in enumerate(models):
        value, best_epoch = best[k]
        if status[k] == "failed":
            results.append(
                TrainResult(
                    None,
                    best_epoch,
                    direction.key(value),
                    len(history[k]),
                    "failed",
                    errors[k],
                    history[k],
                    tcs[k],
                )
            )
            continue
        model.load_state_dict(states[k])
        model.eval()
        results.append(
            TrainResult(
                model, best_epoch, direction.key(value), len(history[k]), status[k], None, history[k], tcs[k]
            )
        )
    return results
