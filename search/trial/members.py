"""The members of a pack as the training loop keeps them: each built as it would be built
alone (a member whose config does not build, or would not fit, fails alone), judged after each
epoch (diverged ones fail, improved ones keep their weights), and its result at the end."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from router_models import BaseModel, ConfigError
from search.data import RouterData
from search.metrics.direction import Direction
from search.trial.config import build_model, check_fits, complete_config
from search.trial.outcomes import EpochReport, MemberConfigError, Status, TrainResult
from search.trial.packable import incompatibility
from search.trial.train_config import resolve_train_config


@dataclass
class MemberState:
    """The loop's record of one member: what it trains and how it fares."""

    index: int
    model: BaseModel
    train_config: dict[str, Any]
    status: Status = Status.TRAINING
    best_key: float = math.inf  # its best value of the metric, as a key: lower is better
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    state: dict[str, torch.Tensor] | None = None  # its best weights, once it left the pack
    seed: int = 0
    arch: dict[str, float] = field(default_factory=dict)  # its architecture's metrics, every epoch


def _as_member(index: int, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a ConfigError becomes member ``index``'s own."""
    try:
        return fn(*args, **kwargs)
    except ConfigError as exc:
        raise MemberConfigError(index, str(exc)) from exc


def build_members(
    configs: Sequence[Mapping[str, Any]],
    data: RouterData,
    seeds: Sequence[int],
    epochs: int | None,
    device: torch.device,
    names: Sequence[str] | None,
) -> list[MemberState]:
    """Check every config (a member that does not build, or would not fit, fails alone), that
    they can share a pack, and build each member's model as it would be built alone."""
    configs = [_as_member(k, complete_config, c, data) for k, c in enumerate(configs)]
    tcs = [_as_member(k, resolve_train_config, c, epochs) for k, c in enumerate(configs)]
    for k, c in enumerate(configs):
        _as_member(k, check_fits, _as_member(k, build_model, c, data, meta=True), device)
    if len(configs) > 1:
        problem = incompatibility(
            configs,
            tcs,
            names or [f"config {i}" for i in range(len(configs))],
            data.embedding_dim,
            data.num_models,
        )
        if problem:
            raise ConfigError(problem)
    members = []
    for k, (c, seed) in enumerate(zip(configs, seeds)):
        torch.manual_seed(seed)  # each member's init is what it would be alone
        members.append(MemberState(k, _as_member(k, build_model, c, data), tcs[k], seed=seed))
    return members


def judge(
    members: Sequence[MemberState],
    rows: Sequence[dict[str, float]],
    epoch: int,
    metric: str,
    rep: EpochReport,
) -> list[int]:
    """Each live member's epoch (its own, ``epoch``), written into ``rep``: diverged ones fail;
    the others record their metrics, and those that beat their best so far are returned (their
    weights are kept)."""
    direction = Direction.of(metric)
    improved = []
    for m, metrics in zip(members, rows):
        for name, what in (("train_loss", "training"), ("val_loss", "validation")):
            if not math.isfinite(metrics[name]):
                rep.failed[m.index] = f"TrainingDiverged: {what} loss became {metrics[name]} at epoch {epoch}"
                break
        if m.index in rep.failed:
            continue
        m.history.append({"epoch": epoch, **metrics})
        rep.metrics[m.index] = metrics
        if direction.key(metrics[metric]) < m.best_key:
            m.best_key, m.best_epoch = direction.key(metrics[metric]), epoch
            improved.append(m.index)
    return improved


def result_of(m: MemberState, direction: Direction) -> TrainResult:
    value = direction.key(m.best_key)  # the key is its own inverse
    if m.status == Status.FAILED:
        return TrainResult(
            None, m.best_epoch, value, len(m.history), m.status, m.error, m.history, m.train_config
        )
    assert m.state is not None
    m.model.load_state_dict(m.state)
    m.model.eval()
    return TrainResult(
        m.model, m.best_epoch, value, len(m.history), m.status, None, m.history, m.train_config
    )
