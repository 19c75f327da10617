"""The Ray Tune function of one trial: data from the object store, train_router, epoch reports."""

from __future__ import annotations

import os
import tempfile
import traceback
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from router_models import save_router
from search.data import RouterData
from search.driver.bridge import ERROR_KEY, FINAL_KEY, NUMBER_KEY
from search.driver.storage import put_file, router_uri
from search.trial.train import train_router


def pick_device(gpu_fraction: float | None) -> torch.device:
    """The trial's GPU slice when Ray gave it one and CUDA is present, else the CPU.

    A logical GPU on a machine without CUDA trains on CPU; a real one gets its memory capped to
    the trial's fraction, so packed trials cannot starve each other.
    """
    if gpu_fraction and torch.cuda.is_available() and ray.get_gpu_ids():
        device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_fraction), device)
        return device
    return torch.device("cpu")


def router_trainable(
    config: dict[str, Any], data: dict[str, Any] | None = None, settings: dict[str, Any] | None = None
) -> None:
    """Train one sampled config; report every epoch; save the router when it runs to the end."""
    assert data is not None and settings is not None
    torch.set_num_threads(max(1, int(settings["cpus"])))
    number = int(config[NUMBER_KEY])
    device = pick_device(settings.get("gpu"))
    node_id = ray.get_runtime_context().get_node_id()
    router_data = RouterData(**data)  # numpy views of the object store, zero-copy

    def report(metrics: dict[str, float], epoch: int) -> None:
        tune.report({**metrics, "epoch": epoch, "node_id": node_id, "device": str(device)})

    try:
        result = train_router(
            config["config"],
            router_data,
            device=device,
            report=report,
            seed=int(settings["seed"]) + number,
            metric=settings["metric"],
        )
    except Exception as exc:  # recorded as FAIL in the study; the search goes on
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if settings.get("debug"):
            message += "\n" + traceback.format_exc()
        tune.report({ERROR_KEY: message, FINAL_KEY: 1, "node_id": node_id})
        return

    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "router.pt")
        save_router(
            result.model.cpu(),
            local,
            model_names=list(router_data.model_names),
            train_config=result.train_config,
            trial_number=number,
            best_epoch=result.best_epoch,
            best_value=result.best_value,
        )
        put_file(local, router_uri(settings["storage"], number))
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    tune.report({FINAL_KEY: 1, "node_id": node_id, "best_epoch": result.best_epoch, "gpu_mem_mb": peak})


def data_payload(data: RouterData) -> dict[str, Any]:
    """The arrays sent once to the object store (contiguous numpy, read back zero-copy)."""
    out = data.arrays()
    for key in ("X", "Y", "mask"):
        out[key] = np.ascontiguousarray(out[key])
    return out
