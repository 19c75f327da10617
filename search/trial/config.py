"""A trial's model: the model a config builds for the data, whether training it fits the device,
and the seed it trains with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from router_models import BaseModel, ConfigError, create_model, get_model_class, read_pipeline_config
from router_models.knn import MAX_REFERENCES, KNNModel
from router_models.prior import kmeans
from search.data import RouterData


def trial_seed(search_seed: int, number: int) -> int:
    """The seed a trial trains with: the search's seed plus its number (``search train`` of an
    exported config uses it again)."""
    return int(search_seed) + int(number)


def complete_config(config: Mapping[str, Any], data: RouterData) -> dict[str, Any]:
    """``config`` with what the data decides filled in (these keys are not settings, and a value
    already there is replaced): a task prior's ``task_names`` (the data's tasks, in index order)
    and a kNN router's ``references`` (the train questions, at most ``MAX_REFERENCES``).

    Raises:
        ConfigError: A task prior on data without tasks; more clusters than train questions.
    """
    full = dict(config)
    key = "pipeline_config" if "pipeline_config" in full else None
    pipeline = dict(read_pipeline_config(config))
    model_config = dict(pipeline.get("model_config") or {})
    n_train = len(data.splits["train"])
    if model_config.get("prior") == "task":
        if not data.task_names:
            raise ConfigError(
                f"model_config.prior: 'task' needs data with tasks; {data.source or 'the data'} has none "
                "(give --tasks FILE or --task-column, or use prior: cluster)"
            )
        model_config["task_names"] = list(data.task_names)
    clusters = model_config.get("clusters")
    if model_config.get("prior") == "cluster" and isinstance(clusters, int) and clusters > n_train:
        raise ConfigError(
            f"model_config.clusters: {clusters} clusters, but the data has {n_train} train questions"
        )
    try:
        keeps_references = issubclass(get_model_class(str(pipeline.get("model_type"))), KNNModel)
    except ConfigError:
        keeps_references = False  # create_model says so
    if keeps_references:
        model_config["references"] = max(1, min(n_train, MAX_REFERENCES))
    pipeline["model_config"] = model_config
    if key is None:
        return pipeline
    full[key] = pipeline
    return full


def build_model(config: Mapping[str, Any], data: RouterData, meta: bool = False) -> BaseModel:
    """create_model for ``data``'s dimensions and what it decides (``complete_config``). With
    ``meta`` the model is built on the meta device: shapes only, nothing allocated.

    Raises:
        ConfigError: The config does not describe a model (the models' own one line). Anything
            else is a bug and is raised as it is.
    """
    pipeline = read_pipeline_config(config)
    data.check_embedding_dim(pipeline.get("embedding_dim"), "pipeline_config")
    config = complete_config(config, data)
    if meta:
        return meta_model(config, data.embedding_dim, data.num_models)
    return create_model(config, data.embedding_dim, data.num_models)


def meta_model(config: Mapping[str, Any], embedding_dim: int, num_models: int) -> BaseModel:
    """The model a config describes, built on the meta device: shapes only, nothing allocated."""
    with torch.device("meta"):
        return create_model(config, embedding_dim, num_models)


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


class Fitter:
    """Fits each new member on the train split in one step (``BaseModel.fit``: its prior, a
    kNN router's references) before it trains. The train rows are read once, on the CPU, and a
    cluster prior's k-means is run once per number of clusters for every member that asks."""

    def __init__(self, data: RouterData) -> None:
        self.data = data
        self.rows: tuple[torch.Tensor, ...] | None = None
        self.centroids: dict[int, torch.Tensor] = {}

    def fit(self, model: BaseModel) -> None:
        if self.rows is None:
            idx = self.data.splits["train"]
            arrays = (self.data.X, self.data.Y, self.data.mask)
            self.rows = tuple(torch.from_numpy(np.ascontiguousarray(a[idx])) for a in arrays)
        X, Y, mask = self.rows
        tasks = self.data.split_tasks("train")
        centroids = None
        prior = model.prior
        if prior is not None and prior.kind == "cluster":
            if prior.groups not in self.centroids:
                self.centroids[prior.groups] = kmeans(X, prior.groups)
            centroids = self.centroids[prior.groups]
        model.fit(X, Y, mask, torch.from_numpy(tasks).long() if tasks is not None else None, centroids)
