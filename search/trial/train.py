"""train_router(): one config, one device, masked BCE, on-device index batching."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from router_models import BaseModel, ConfigError, create_model, read_pipeline_config
from search import metrics as M
from search.data import RouterData

TRAIN_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "batch_size": 256,
    "epochs": 20,
}
"""Training settings used where ``pipeline_config.train_config`` leaves a key out."""

# Metrics reported per epoch, and which way is better for each.
METRIC_MODES: dict[str, str] = {
    "val_loss": "min",
    "val_correctness_acc": "max",
    "val_auc": "max",
    "val_route_acc": "max",
    "train_loss": "min",
}

Report = Callable[[dict[str, float], int], bool | None]


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf."""


@dataclass
class TrainResult:
    """What train_router returns: the best model (weights loaded, eval mode) and its story."""

    model: BaseModel
    best_epoch: int
    best_value: float
    epochs_run: int
    stopped_early: bool
    history: list[dict[str, float]] = field(default_factory=list)
    train_config: dict[str, Any] = field(default_factory=dict)


def resolve_train_config(config: Mapping[str, Any], epochs: int | None = None) -> dict[str, Any]:
    """``train_config`` with defaults filled in and every value checked."""
    pipeline = read_pipeline_config(config)
    given = pipeline.get("train_config") or {}
    if not isinstance(given, Mapping):
        raise ConfigError("pipeline_config.train_config must be an object")
    unknown = sorted(set(given) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"pipeline_config.train_config: unknown key(s) {unknown}; valid: {list(TRAIN_DEFAULTS)}"
        )
    tc = {**TRAIN_DEFAULTS, **given}
    if epochs is not None:
        tc["epochs"] = epochs
    for key in ("lr", "weight_decay"):
        v = tc[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"train_config.{key} must be a number >= 0, got {v!r}")
    if tc["lr"] == 0:
        raise ConfigError("train_config.lr must be > 0, got 0")
    for key in ("batch_size", "epochs"):
        v = tc[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"train_config.{key} must be an integer >= 1, got {v!r}")
    return tc


def build_model(config: Mapping[str, Any], data: RouterData) -> BaseModel:
    """create_model for ``data``'s dimensions; model errors become ConfigError."""
    pipeline = read_pipeline_config(config)
    data.check_embedding_dim(pipeline.get("embedding_dim"), "pipeline_config")
    try:
        return create_model(config, data.embedding_dim, data.num_models)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"pipeline_config.model_config: {exc}") from None


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


@torch.no_grad()
def predict(model: BaseModel, X: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """Logits for X in chunks, in eval mode, float32."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(X[i : i + chunk]).float() for i in range(0, X.shape[0], chunk)])
    model.train(was_training)
    return out


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
    """Train one router config and keep its best epoch by ``metric``.

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
    if metric not in METRIC_MODES:
        raise ConfigError(f"unknown metric {metric!r}; valid: {', '.join(METRIC_MODES)}")
    tc = resolve_train_config(config, epochs)
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_model(config, data)

    # -- data: on the device once, batched by index ------------------------------------------
    # On CPU the arrays are used in place (zero-copy from the object store); batches gather rows
    # by global question index, so no per-split copy of the embeddings is made.
    X, Y, mask = _device_arrays(data, device)
    train_idx = torch.from_numpy(data.splits["train"]).to(device)
    val_idx = torch.from_numpy(data.splits["val"]).to(device)
    Xva, Yva, Mva = X[val_idx], Y[val_idx], mask[val_idx]
    mean, std = column_stats(X, train_idx)
    model.set_input_normalization(mean.cpu(), std.cpu())  # part of the saved router
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tc["lr"], weight_decay=tc["weight_decay"], fused=True
    )
    gen = torch.Generator(device="cpu").manual_seed(seed)
    use_bf16 = device.type == "cuda"
    n, bs = train_idx.numel(), tc["batch_size"]
    sign = 1.0 if METRIC_MODES[metric] == "min" else -1.0

    best_value, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    history: list[dict[str, float]] = []
    stopped = False
    for epoch in range(1, tc["epochs"] + 1):
        # -- train one epoch -----------------------------------------------------------------
        model.train()
        perm = train_idx[torch.randperm(n, generator=gen).to(device)]
        total = torch.zeros((), device=device)
        for start in range(0, n, bs):
            idx = perm[start : start + bs]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(X[idx])
            loss = M.masked_bce(logits, Y[idx], mask[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * idx.numel()
        train_loss = float(total) / n  # one sync per epoch, not per batch
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"training loss became {train_loss} at epoch {epoch}")

        # -- evaluate on val -----------------------------------------------------------------
        val = M.evaluate(predict(model, Xva), Yva, Mva)
        metrics = {"train_loss": train_loss, **{f"val_{k}": v for k, v in val.items()}}
        history.append({"epoch": epoch, **metrics})
        if not math.isfinite(metrics["val_loss"]):
            raise TrainingDiverged(f"validation loss became {metrics['val_loss']} at epoch {epoch}")

        # -- keep the best state -------------------------------------------------------------
        if sign * metrics[metric] < best_value:
            best_value, best_epoch = sign * metrics[metric], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

        if report is not None and report(metrics, epoch):
            stopped = True
            break

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        best_epoch=best_epoch,
        best_value=sign * best_value,
        epochs_run=len(history),
        stopped_early=stopped,
        history=history,
        train_config=tc,
    )


def split_metrics(model: BaseModel, data: RouterData, split: str) -> dict[str, float]:
    """Full metrics of a trained model on one split, with that split's baselines."""
    device = next(model.parameters()).device
    X, y, mask = data.split(split)
    _, y_train, m_train = data.split("train")
    on_device = [torch.from_numpy(a).to(device) for a in (X, y, mask)]
    return {
        **M.evaluate(predict(model, on_device[0]), on_device[1], on_device[2]),
        **M.baselines(y_train, m_train, y, mask),
    }
