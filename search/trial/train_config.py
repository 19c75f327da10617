"""A trial's ``train_config``: its keys, their defaults, and the checks on its values.

Read by the space (which keys a space may search, the default epochs), by the packer (what
members must share) and by the trainer (the settings it trains with).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from router_models import ConfigError, read_pipeline_config
from search.limits import MAX_BATCH, MAX_EPOCHS

TRAIN_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 1e-2,
    "batch_size": 256,
    "epochs": 20,
}
"""Training settings used where ``pipeline_config.train_config`` leaves a key out."""

# train_config keys a member of a pack may set for itself; every other one is shared by a pack.
PER_MEMBER_TRAIN_KEYS = ("lr", "weight_decay")


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
