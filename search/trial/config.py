"""A trial's settings: train_config with its defaults, the model a config builds, and whether
training it fits the device."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from router_models import BaseModel, ConfigError, create_model, read_pipeline_config
from search.data import RouterData
from search.limits import MAX_BATCH, MAX_EPOCHS

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
    "val_aiq": "max",  # only for data with costs
    "train_loss": "min",
}


def trial_seed(search_seed: int, number: int) -> int:
    """The seed a trial trains with: the search's seed plus its number (``search train`` of an
    exported config uses it again)."""
    return int(search_seed) + int(number)


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
    for key, high in (("batch_size", MAX_BATCH), ("epochs", MAX_EPOCHS)):
        v = tc[key]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= high:
            raise ConfigError(f"train_config.{key} must be an integer from 1 to {high:,}, got {v!r}")
    return tc


def build_model(config: Mapping[str, Any], data: RouterData, meta: bool = False) -> BaseModel:
    """create_model for ``data``'s dimensions; model errors become ConfigError.

    With ``meta`` the model is built on the meta device: shapes only, nothing allocated.
    """
    pipeline = read_pipeline_config(config)
    data.check_embedding_dim(pipeline.get("embedding_dim"), "pipeline_config")
    try:
        if meta:
            with torch.device("meta"):
                return create_model(config, data.embedding_dim, data.num_models)
        return create_model(config, data.embedding_dim, data.num_models)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"pipeline_config.model_config: {exc}") from None


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PB"


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device`` now (host memory for the CPU)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(model: BaseModel, device: torch.device) -> None:
    """Raise ConfigError when training ``model`` (built on the meta device, so nothing was
    allocated) would need more memory than ``device`` has free: its weights, gradients and
    AdamW's two moments, four float32 copies of every parameter."""
    params = sum(p.numel() for p in model.parameters())
    need = 16 * params
    free = free_memory(device)
    if need > free:
        blocks = model.extra_config.get("num_blocks")
        extra = f", num_blocks {blocks}" if blocks is not None else ""
        raise ConfigError(
            f"model_config.hidden_dims {model.hidden_dims}{extra}: a {model.model_type} of {params:,} "
            f"parameters needs {_human(need)} to train with AdamW, but the {device.type} has "
            f"{_human(free)} free"
        )
