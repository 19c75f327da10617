"""A trial's model: the model a config builds for the data, whether training it fits the device,
and the seed it trains with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from router_models import BaseModel, ConfigError, create_model, read_pipeline_config
from search.data import RouterData


def trial_seed(search_seed: int, number: int) -> int:
    """The seed a trial trains with: the search's seed plus its number (``search train`` of an
    exported config uses it again)."""
    return int(search_seed) + int(number)


def build_model(config: Mapping[str, Any], data: RouterData, meta: bool = False) -> BaseModel:
    """create_model for ``data``'s dimensions. With ``meta`` the model is built on the meta
    device: shapes only, nothing allocated.

    Raises:
        ConfigError: The config does not describe a model (the models' own one line). Anything
            else is a bug and is raised as it is.
    """
    pipeline = read_pipeline_config(config)
    data.check_embedding_dim(pipeline.get("embedding_dim"), "pipeline_config")
    if meta:
        with torch.device("meta"):
            return create_model(config, data.embedding_dim, data.num_models)
    return create_model(config, data.embedding_dim, data.num_models)


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
