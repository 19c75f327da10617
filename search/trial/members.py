"""The members of a pack as the training loop keeps them: each built as it would be built
alone (a member whose config does not build, or would not fit, is returned failed, not raised:
it fails alone), judged after each epoch (diverged ones fail, improved ones keep their weights),
and its result at the end."""

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
from search.trial.outcomes import EpochReport, Status, TrainResult
from search.trial.packable import incompatibility
from search.trial.train_config import resolve_train_config


@dataclass
class MemberState:
    """The loop's record of one member: what it trains and how it fares."""

    id: int  # the member's id from start to end: the caller's (a trial number), else its position
    model: BaseModel | None  # None for a member whose config did not build
    train_config: dict[str, Any]
    status: Status = Status.TRAINING
    best_key: float = math.inf  # its best value of the metric, as a key: lower is better
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    state: dict[str, torch.Tensor] | None = None  # its best weights, once it left the pack
    seed: int = 0
    arch: dict[str, float] = field(default_factory=dict)  # its architecture's metrics, every epoch


CONFIG_ERROR = "ConfigError: "  # how a member whose config did not build is said to have failed


def _why(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``fn(*args, **kwargs)`` and None, or None and the config error's line."""
    try:
        return fn(*args, **kwargs), None
    except ConfigError as exc:
        return None, f"{CONFIG_ERROR}{exc}"


def build_members(
    configs: Sequence[Mapping[str, Any]],
    data: RouterData,
    seeds: Sequence[int],
    epochs: int | None,
    device: torch.device,
    names: Sequence[str] | None,
    ids: Sequence[int] | None = None,
) -> list[MemberState]:
    """Every config as a member (``ids``, default its position), its model built as it would
    be built alone; a member whose config does not build, or would not fit, is returned FAILED with the
    reason (the others train on without it).

    Raises:
        ConfigError: The members that build cannot share a pack (the key that differs).
    """
    members: list[MemberState] = []
    ready: list[tuple[MemberState, dict[str, Any]]] = []
    ids = list(ids) if ids is not None else list(range(len(configs)))
    for k, (config, seed) in enumerate(zip(configs, seeds)):
        completed, error = _why(complete_config, config, data)
        tc, error = (None, error) if error else _why(resolve_train_config, completed, epochs)
        if error is None:
            meta, error = _why(build_model, completed, data, meta=True)
            error = error or _why(check_fits, meta, device)[1]
        member = MemberState(ids[k], None, tc or {}, seed=seed)
        if error is not None:
            member.status, member.error = Status.FAILED, error
        else:
            ready.append((member, completed))
        members.append(member)
    if len(ready) > 1:
        at = {i: k for k, i in enumerate(ids)}
        chosen = [names[at[m.id]] if names else f"config {at[m.id]}" for m, _ in ready]
        problem = incompatibility(
            [c for _, c in ready],
            [m.train_config for m, _ in ready],
            chosen,
            data.embedding_dim,
            data.num_models,
        )
        if problem:
            raise ConfigError(problem)
    for member, completed in ready:
        torch.manual_seed(member.seed)  # each member's init is what it would be alone
        member.model, error = _why(build_model, completed, data)
        if error is not None:
            member.status, member.error = Status.FAILED, error
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
                rep.failed[m.id] = f"TrainingDiverged: {what} loss became {metrics[name]} at epoch {epoch}"
                break
        if m.id in rep.failed:
            continue
        m.history.append({"epoch": epoch, **metrics})
        rep.metrics[m.id] = metrics
        if direction.key(metrics[metric]) < m.best_key:
            m.best_key, m.best_epoch = direction.key(metrics[metric]), epoch
            improved.append(m.id)
    return improved


def result_of(m: MemberState, direction: Direction) -> TrainResult:
    value = direction.key(m.best_key)  # the key is its own inverse
    if m.status == Status.FAILED:
        return TrainResult(
            None, m.best_epoch, value, len(m.history), m.status, m.error, m.history, m.train_config
        )
    assert m.state is not None and m.model is not None
    m.model.load_state_dict(m.state)
    m.model.eval()
    return TrainResult(
        m.model, m.best_epoch, value, len(m.history), m.status, None, m.history, m.train_config
    )
