"""``search train`` and ``search.train``: train one config.json, or several as one pack; save
router.pt and metrics.json for each."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from router_models import ConfigError, read_pipeline_config, save_router
from search import metrics as M
from search.data import RouterData, load_data
from search.data.data_options import ENCODER_PARAM, DataOptions
from search.data.data_options import FIELDS as DATA_FIELDS
from search.data.encode.encoder import best_device
from search.errors import UserError
from search.files.atomic import write_json
from search.limits import MAX_EPOCHS, check_int, check_seed
from search.log import logger
from search.metrics.direction import METRIC_MODES
from search.results.run_files import SearchResult
from search.routing.inference import predict, split_metrics, val_logits
from search.routing.offsets import margin_routing
from search.trial.members import CONFIG_ERROR, build_members
from search.trial.train import EpochReport, TrainResult, train_pack

log = logger("driver")


def _search_result(path: str) -> SearchResult | None:
    """The search result of a config a search exported, or None: a config written by hand, or
    one whose block is not a search's (read errors are the config reader's to say)."""
    try:
        return SearchResult.read(Path(path))
    except UserError:  # read_pipeline_config reports a bad file in one line
        return None


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda when present, else cpu; an unavailable cuda is a user error."""
    if name == "auto":
        return torch.device(best_device())
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"--device {name!r}: not a device; valid: auto, cpu, cuda, cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: no CUDA device on this machine; use auto or cpu")
    return device


def _names(paths: list[str]) -> list[str]:
    stems = [Path(p).stem for p in paths]
    for i, stem in enumerate(stems):
        if stems.index(stem) != i:
            raise UserError(
                f"{paths[stems.index(stem)]} and {paths[i]} would both write {stem}/: give the configs "
                "distinct file names"
            )
    return stems


def _progress(names: list[str], start: float) -> Any:
    def report(rep: EpochReport) -> list[int]:
        for k, m in sorted(rep.metrics.items()):
            who = f"{names[k]}  " if len(names) > 1 else ""
            log.info(
                f"{who}epoch {rep.epoch:>3}  train_loss {m['train_loss']:.4f}  val_loss {m['val_loss']:.4f}  "
                f"val_auc {m['val_auc']:.4f}  val_route_acc {m['val_route_acc']:.4f}  "
                f"({time.perf_counter() - start:.1f}s)"
            )
        for k, message in rep.failed.items():
            log.info(f"{names[k]}: failed: {message}")
        return []

    return report


def _write(result: TrainResult, data: RouterData, out: Path, metric: str) -> dict[str, Any]:
    assert result.model is not None
    metrics: dict[str, Any] = {
        "val": split_metrics(result.model, data, "val"),
        "test": split_metrics(result.model, data, "test"),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "selection_metric": metric,
        "data_source": data.source,
    }
    out.mkdir(parents=True, exist_ok=True)
    model = result.model.cpu()
    routing = margin_routing(val_logits(model, data), data)
    metrics["test"]["route_acc_with_margin"] = M.route_acc(
        predict(model, torch.from_numpy(data.split("test")[0].copy())),
        *data.split("test")[1:],
        routing["offsets"],
    )
    metrics["routing"] = {k: v for k, v in routing.items() if k != "offsets"}
    save_router(
        model,
        out / "router.pt",
        **data.saved_with(),
        train_config=result.train_config,
        routing=routing,
        metrics=metrics,
    )
    write_json(out / "metrics.json", metrics)
    return metrics


def default_train_dir() -> Path:
    """``runs/train-<date>-<time>``: where ``search train`` and ``search.train`` write when no
    output folder is given."""
    return Path(f"runs/train-{time.strftime('%Y%m%d-%H%M%S')}")


@dataclass
class Trained:
    """One config's outcome: ``status`` is ``complete`` or ``failed`` (``error`` says why);
    a complete one has its router and metrics (val and test) written under ``out``."""

    name: str
    status: str
    router_path: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    best_epoch: int | None = None


def run_train(
    config_paths: list[str],
    data_spec: Any,
    out: Path,
    *,
    options: DataOptions | None = None,
    epochs: int | None,
    device: str,
    seed: int | None,
    metric: str | None,
) -> list[Trained]:
    """Train the configs (several: as one pack) and write router.pt and metrics.json for each:
    in ``out`` for one config, in ``out/<file stem>/`` for several.

    A config a search exported (with ``search_result``) trains again as its trial did: on the
    search's data and data options (unless ``data_spec`` is given), picking its best epoch by
    the search's metric, with the trial's seed (unless ``metric`` or ``seed`` are given).
    """
    recorded = _search_result(config_paths[0])
    searched = recorded.data_source if recorded is not None else None
    metric = metric or (recorded.metric if recorded is not None else None) or "val_loss"
    seed = seed if seed is not None else int(recorded.seed if recorded is not None else 0)
    if data_spec is None and recorded is not None and searched:
        data_spec = searched
        given = options is not None and options != DataOptions()  # any data flag on the command line
        if not given and isinstance(recorded.data_options, dict):
            options = DataOptions(**{k: v for k, v in recorded.data_options.items() if k in DATA_FIELDS})
        log.info(f"data: the search's ({data_spec}), as {config_paths[0]} records")
    elif data_spec is not None and searched and str(data_spec) != searched:
        log.info(f"note: training on {data_spec}, not on the search's data ({searched})")
    elif data_spec is None:
        log.info("note: no --data and no search in the config: synthetic data")
    if metric not in METRIC_MODES:
        raise UserError(f"--metric {metric!r}: valid: {', '.join(METRIC_MODES)}")
    names = _names(config_paths)
    configs: list[dict[str, Any]] = [{"pipeline_config": read_pipeline_config(p)} for p in config_paths]
    chosen = configs[0]["pipeline_config"].get(ENCODER_PARAM)
    if chosen and (options is None or options.encoder is None):  # the encoder its search chose
        options = (options or DataOptions()).merged(encoder=chosen)
    if epochs is not None:
        check_int(epochs, 1, MAX_EPOCHS, "--epochs")
    check_seed(seed, "--seed")
    dev = resolve_device(device)
    data = load_data(data_spec, options)
    packed = f"; {len(configs)} configs as one pack" if len(configs) > 1 else ""
    log.info(f"data: {data.source} ({data.num_models} models, {data.embedding_dim}-d); device: {dev}{packed}")

    # a config that does not build is the user's to fix: one line before anything trains
    shown = [Path(p).name for p in config_paths]
    for member in build_members(configs, data, [seed] * len(configs), epochs, dev, shown):
        if member.error is not None:
            raise ConfigError(member.error.removeprefix(CONFIG_ERROR))
    results = train_pack(
        configs,
        data,
        seeds=[seed] * len(configs),
        device=dev,
        epochs=epochs,
        report=_progress(names, time.perf_counter()),
        metric=metric,
        names=[Path(p).name for p in config_paths],
    )
    trained = []
    for name, result in zip(names, results):
        if result.status == "failed":
            log.info(f"{name}: failed: {result.error}")
            trained.append(Trained(name, "failed", error=result.error))
            continue
        dest = out if len(configs) == 1 else out / name
        metrics = _write(result, data, dest, metric)
        t = metrics["test"]
        who = f"{name}: " if len(configs) > 1 else ""
        log.info(
            f"{who}best epoch {result.best_epoch}; test route_acc {t['route_acc']:.4f}, with the val-tuned "
            f"margin {t['route_acc_with_margin']:.4f} (single best {t['single_best_route_acc']:.4f}, "
            f"oracle {t['oracle_route_acc']:.4f}), correctness_acc {t['correctness_acc']:.4f}, "
            f"auc {t['auc']:.4f}"
        )
        log.info(f"wrote {dest / 'router.pt'} and {dest / 'metrics.json'}")
        trained.append(Trained(name, "complete", dest / "router.pt", metrics, best_epoch=result.best_epoch))
    return trained
