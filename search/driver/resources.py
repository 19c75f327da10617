"""Whether a trial's resources can ever be granted, checked before the search starts: Ray Tune
waits for an infeasible trial forever, without a word.

A local run has this machine; a cluster, the nodes alive now. A cluster started by Ray's
cluster launcher may have an autoscaler that adds nodes on demand (Ray Tune tells by the
launcher's bootstrap file in the home dir, and so do we): then the search says it waits, and
waits at most ``AUTOSCALE_WAIT_S`` for its first pack to start.
"""

from __future__ import annotations

import os
from pathlib import Path

from search.errors import UserError
from search.log import logger

AUTOSCALE_WAIT_S = 900.0
_BOOTSTRAP = "~/ray_bootstrap_config.yaml"  # written on the head node by the cluster launcher

log = logger("driver")


def has_autoscaler() -> bool:
    return Path(_BOOTSTRAP).expanduser().exists()


def _fits(nodes: list[dict[str, float]], cpu: float, gpu: float | None) -> bool:
    any_gpu = any(n.get("GPU", 0) > 0 for n in nodes)
    return any(
        n.get("CPU", 0) >= cpu and (gpu is None or not any_gpu or n.get("GPU", 0) >= gpu) for n in nodes
    )


def node_resources() -> list[dict[str, float]]:
    """CPU and GPU totals of every alive node of the connected Ray."""
    import ray

    return [
        {"CPU": float(n["Resources"].get("CPU", 0)), "GPU": float(n["Resources"].get("GPU", 0))}
        for n in ray.nodes()
        if n.get("Alive")
    ]


def check_resources(cpu: float, gpu: float | None, cluster: bool) -> float | None:
    """Refuse a trial that no node can hold; returns how long to wait for a node that can
    (an autoscaling cluster), or None when one is there.

    Raises:
        UserError: No node (this machine, for a local run) has ``cpu`` CPUs (with ``gpu``).
    """
    if not cluster:
        nodes = [{"CPU": float(os.cpu_count() or 1), "GPU": _local_gpus()}]
    else:
        nodes = node_resources()
    if _fits(nodes, cpu, gpu):
        return None
    largest = max((n.get("CPU", 0) for n in nodes), default=0)
    where = "this machine has" if not cluster else f"the largest of the cluster's {len(nodes)} node(s) has"
    if cluster and has_autoscaler():
        log.info(
            f"note: resources.cpu {cpu:g}: no node has that many CPUs now ({where} {largest:g}); the "
            f"cluster's autoscaler may add one: waiting up to {AUTOSCALE_WAIT_S:.0f} s for the first pack"
        )
        return AUTOSCALE_WAIT_S
    raise UserError(
        f"resources.cpu {cpu:g}: no trial could ever start ({where} {largest:g} CPUs); lower "
        "resources.cpu in the space (CPU threads per trial)"
    )


def _local_gpus() -> float:
    import torch

    return float(torch.cuda.device_count()) if torch.cuda.is_available() else 0.0
