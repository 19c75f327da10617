"""The training loop: one config or a pack of K, one device, masked BCE, on-device index batching.

``train_pack`` trains K compatible configs as one pack (see ``packs.py``); ``train_router`` is
the pack of one. Members share the data and the batch order; each keeps its own init seed,
learning rate, weight decay, dropout, best epoch, and fate (a :class:`Status`).

The loop reads top to bottom (``train_pack``): a :class:`~search.trial.pack_run.PackRun` puts
the data on the device once and adds the first cohort (``members.build_members``: a member whose
config does not build fails alone); then per epoch it trains each cohort, evaluates on val and
judges each member (``members.judge``: diverged members fail, improved ones keep their weights),
the report is answered, the members it names (and the failed ones) leave, and joiners arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from router_models import ConfigError
from search.data import RouterData
from search.metrics.direction import ARCHITECTURE_METRICS, COST_METRICS, METRIC_MODES
from search.trial.fidelity import Fidelity
from search.trial.members import CONFIG_ERROR
from search.trial.outcomes import (
    EpochReport,
    Joiner,
    PackReport,
    Refill,
    Status,
    TrainingDiverged,
    TrainResult,
)
from search.trial.pack_run import PackRun

__all__ = [
    "EpochReport",
    "Joiner",
    "PackReport",
    "Refill",
    "Status",
    "TrainResult",
    "TrainingDiverged",
    "train_pack",
    "train_router",
]


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
        report: As for ``train_pack`` (the member is id 0): returning ``[0]`` stops it.
        seed: Seeds init and batch order; CPU runs are reproducible.
        metric: One of METRIC_MODES, to pick the best epoch.

    Raises:
        ConfigError: On a bad config. TrainingDiverged: when the loss is NaN or inf.
    """
    (result,) = train_pack(
        [config], data, device=device, epochs=epochs, report=report, seeds=[seed], metric=metric
    )
    if result.status == Status.FAILED:
        error = result.error or "training failed"
        if error.startswith(CONFIG_ERROR):
            raise ConfigError(error.removeprefix(CONFIG_ERROR))
        raise TrainingDiverged(error)
    return result


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
    ids: Sequence[int] | None = None,
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
        done: Called with a member's id and result as soon as it has run every epoch (a
            pack that goes on with joiners need not hold a finished member back).
        latency: Also measure each member's ``router_latency_ms`` once, as it would serve alone
            (one query at a time, on ``device``; ``inference.latency_ms``) and report it with
            its ``param_count`` every epoch.
        ids: Each member's id in every report and callback (e.g. its trial number; joiners
            bring their own); default: its position.

    Returns:
        One :class:`TrainResult` per member, configs first, then joiners in the order they
        joined.

    Raises:
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
    run = PackRun(
        data,
        device,
        metric,
        epochs,
        device.type == "cuda" if pad is None else pad,
        fidelity or Fidelity(),
        latency,
    )
    run.add(configs, seeds, names, ids)
    while run.training:
        rep = run.train()
        # the report's answer: members told to stop; failed ones leave too
        stop = set(report(rep) if report is not None else ()) & set(rep.metrics)
        run.settle(rep, stop, done)
        run.join(list(refill()) if refill is not None else [])
    return run.results()
