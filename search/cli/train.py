"""``search train``: train one config.json, save router.pt and metrics.json."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from router_models import read_pipeline_config, save_router
from search.data import load_data
from search.errors import UserError
from search.results.export import write_json
from search.trial.train import METRIC_MODES, split_metrics, train_router


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda when present, else cpu; an unavailable cuda is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a device; valid: auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: no CUDA device on this machine; use auto or cpu")
    return device


def run_train(
    config_path: str,
    data_spec: str | None,
    out: Path,
    *,
    epochs: int | None,
    device: str,
    seed: int,
    metric: str,
) -> int:
    if metric not in METRIC_MODES:
        raise UserError(f"--metric {metric!r}: valid: {', '.join(METRIC_MODES)}")
    config: dict[str, Any] = {"pipeline_config": read_pipeline_config(config_path)}
    if epochs is not None and epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {epochs}")
    dev = resolve_device(device)
    data = load_data(data_spec)
    print(f"data: {data.source} ({data.num_models} models, {data.embedding_dim}-d); device: {dev}")

    start = time.perf_counter()

    def progress(m: dict[str, float], epoch: int) -> None:
        print(
            f"epoch {epoch:>3}  train_loss {m['train_loss']:.4f}  val_loss {m['val_loss']:.4f}  "
            f"val_auc {m['val_auc']:.4f}  val_route_acc {m['val_route_acc']:.4f}  "
            f"({time.perf_counter() - start:.1f}s)",
            flush=True,
        )

    result = train_router(config, data, device=dev, epochs=epochs, report=progress, seed=seed, metric=metric)
    assert result.model is not None  # train_router raises for a failed member
    metrics: dict[str, Any] = {
        "val": split_metrics(result.model, data, "val"),
        "test": split_metrics(result.model, data, "test"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "selection_metric": metric,
        "data_source": data.source,
    }
    out.mkdir(parents=True, exist_ok=True)
    save_router(
        result.model.cpu(),
        out / "router.pt",
        model_names=data.model_names,
        train_config=result.train_config,
        metrics=metrics,
    )
    write_json(out / "metrics.json", metrics)
    t = metrics["test"]
    print(
        f"best epoch {result.best_epoch}; test route_acc {t['route_acc']:.4f} "
        f"(single best {t['single_best_route_acc']:.4f}, oracle {t['oracle_route_acc']:.4f}), "
        f"correctness_acc {t['correctness_acc']:.4f}, auc {t['auc']:.4f}"
    )
    print(f"wrote {out / 'router.pt'} and {out / 'metrics.json'}")
    return 0
