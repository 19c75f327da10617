"""Outputs of a run: config.json, best_router.pt, results.parquet; every write atomic."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.errors import UserError
from search.files.rundir import RunDir
from search.results.baselines import BASELINES
from search.results.records import read_object
from search.results.run_files import RoutingRecord, SearchResult
from search.study.objectives import objectives_of
from search.trial.config import trial_seed

# -- search outputs -------------------------------------------------------------------------


@dataclass(frozen=True)
class RouterEntry:
    """One router of a run, as the routing table and the recommendation see it.

    ``kind`` is ``trial``, ``ensemble`` or ``baseline``; ``key`` a baseline's key
    (``single_best``, ``task_best``, ``knn``); ``rank`` its simplicity, lower being simpler
    (the recommendation prefers the simpler router within val noise): the baselines in the
    order of ``baselines.BASELINES``, then a fitted trial (``group_mean``, ``knn``), then a
    learned one, then the ensemble."""

    name: str
    path: Path
    kind: str = "trial"
    key: str = ""
    rank: int = 4


LEARNED_TRIAL_RANK, ENSEMBLE_RANK = 4, 5
# A fitted family is as simple as the baseline it generalizes: group means as the best LLM per
# task (a table per group), kNN as the kNN baseline; their trials were tuned on val as kNN's k is.
FAMILY_RANKS = {"group_mean": BASELINES.index("task_best"), "knn": BASELINES.index("knn")}


def trial_rank(model_type: str) -> int:
    """The simplicity rank of a trial of ``model_type`` (see :class:`RouterEntry`)."""
    return FAMILY_RANKS.get(model_type, LEARNED_TRIAL_RANK)


def baseline_entries(run_dir: Path, names: dict[str, str]) -> list[RouterEntry]:
    """The run's saved baseline routers (``names``: key -> name in the table), simplest first."""
    out = []
    for rank, key in enumerate(BASELINES):
        path = RunDir(run_dir).baseline_router(key)
        if key in names and path.exists():
            out.append(RouterEntry(names[key], path, "baseline", key, rank))
    return out


def routers_of(run_dir: Path, model_type: str, result: SearchResult) -> list[RouterEntry]:
    """The run's routers for the routing table: the exported trial's (of ``model_type``), each
    other model type's best (``family_bests``, in ``families/``) and the ensemble, when written,
    then the baselines the result names."""
    out = []
    trial = result.trial
    if (RunDir(run_dir).best_router).exists():
        what = "picked" if result.pareto else "best"  # a multi-objective run's front point
        rank = trial_rank(model_type)
        out.append(
            RouterEntry(
                f"{what} trial {trial} ({model_type})", RunDir(run_dir).best_router, "trial", "", rank
            )
        )
    for family, number in sorted(result.family_bests.items()):
        path = RunDir(run_dir).family_router(family)
        if number != trial and path.exists():
            out.append(RouterEntry(f"best {family} trial {number}", path, "trial", "", trial_rank(family)))
    ens = result.ensemble
    if ens is not None and (run_dir / ens["router"]).exists():
        kind = "routers" if ens.get("baselines") else "trials"
        name = f"ensemble of {result.ensemble_size} {kind}"
        out.append(RouterEntry(name, run_dir / ens["router"], "ensemble", "", ENSEMBLE_RANK))
    return out + baseline_entries(run_dir, {str(k): str(v) for k, v in result.baselines.items()})


def run_routers(run_dir: Path) -> list[RouterEntry]:
    """The routers of a finished run (its config.json), as :func:`routers_of` lists them.

    Raises:
        UserError: No config.json, or not a run's (one line naming what it lacks).
    """
    config_path = RunDir(run_dir).config
    if not config_path.is_file():
        raise UserError(f"{run_dir}: no config.json; give a router file (.pt) or a finished run dir")
    config = read_object(config_path, "a run's config.json")
    result = SearchResult.from_dict(config.get("search_result"), config_path)
    try:
        model_type = str(config["pipeline_config"]["model_type"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"{config_path}: not a run's config.json (no pipeline_config.model_type)") from exc
    return routers_of(run_dir, model_type, result)


def recommended_router(run_dir: Path) -> tuple[Path, str]:
    """The router file a run recommends (chosen on val: a searched router, the ensemble or a
    baseline) and its name; the exported trial's when the run recommended none."""
    routers = {e.name: e.path for e in run_routers(run_dir)}
    if not routers:
        raise UserError(f"{run_dir}: holds no router ({RunDir.BEST_ROUTER} is missing)")
    record = RoutingRecord.read(run_dir)
    named = record.recommended if record is not None else None
    if named is not None and named not in routers:
        raise UserError(
            f"{RunDir(run_dir).routing_table}: recommends {named!r}, which is not one of the run's "
            f"routers ({', '.join(routers)})"
        )
    name = named if named is not None else next(iter(routers))
    return routers[name], name


RESULT_METRICS = (
    "train_loss",
    "val_loss",
    "val_correctness_acc",
    "val_auc",
    "val_route_acc",
    "val_aiq",
    "val_cost",
    "param_count",
    "router_latency_ms",
)


def trial_rows(study: Any, space: Any) -> list[dict[str, Any]]:
    """One row per study trial: params (resolved config values), state, epochs, metrics, timing."""
    interrupted = set(study.user_attrs.get("interrupted_trials", []))
    objectives = objectives_of(study, space.search)
    front = {t.number for t in objectives.front()}
    rows = []
    for t in study.get_trials(deepcopy=False):
        pipeline = space.trial_config(t.params)["pipeline_config"] if t.params else {}
        values = {**pipeline.get("model_config", {}), **pipeline.get("train_config", {})}
        last = t.user_attrs.get("last_metrics", {})
        best = t.user_attrs.get("best_metrics", {})
        row: dict[str, Any] = {
            "trial": t.number,
            "tune_trial_id": t.user_attrs.get("tune_trial_id"),
            "pack": t.user_attrs.get("pack", t.number),
            "state": t.state.name,
            "value": objectives.value(t),
            "epochs_run": t.user_attrs.get("epochs_run", len(objectives.curve(t))),
            "model_type": pipeline.get("model_type"),
        }
        if len(space.data.encoders) > 1:
            row["encoder"] = space.encoder_of(t.params) if t.params else None
        row.update(objectives.columns(t, front))
        for k, v in values.items():
            row[f"param_{k}"] = json.dumps(v) if isinstance(v, list) else v
        for m in RESULT_METRICS:
            row[f"last_{m}"] = last.get(m)
            row[f"best_{m}"] = best.get(m)
        row.update(
            start_time=t.user_attrs.get("start_time"),
            duration_s=t.user_attrs.get("duration_s"),
            node=t.user_attrs.get("node"),
            device=t.user_attrs.get("device"),
            restarts=t.user_attrs.get("restarts", 0),
            gpu_mem_mb=t.user_attrs.get("gpu_mem_mb"),
            error=t.user_attrs.get("error") or ("interrupted" if t.number in interrupted else None),
            interrupted=t.number in interrupted,
        )
        rows.append(row)
    return rows


def best_config(
    study: Any,
    space: Any,
    data_source: str,
    embedding_dim: int,
    data_options: dict[str, Any] | None = None,
    trial: Any = None,
) -> tuple[dict[str, Any], SearchResult]:
    """config.json of ``trial`` (default: the trial the run exports) and its search result: what
    ``search train`` needs to train that trial again (its data, data options, metric and seed),
    and with several objectives its value of each."""
    objectives = objectives_of(study, space.search)
    best = trial if trial is not None else objectives.exported()
    config = space.trial_config(best.params)
    config["pipeline_config"]["embedding_dim"] = embedding_dim
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    result = SearchResult(
        metric=space.search.primary,
        mode=space.search.direction,
        value=objectives.value(best),
        trial=best.number,
        tune_trial_id=best.user_attrs.get("tune_trial_id"),
        params=best.params,
        train_config=config["pipeline_config"]["train_config"],
        best_epoch=best.user_attrs.get("best_epoch"),
        metrics=best.user_attrs.get("best_metrics", {}),
        data_source=data_source,
        data_options=data_options,
        seed=trial_seed(space.search.seed, best.number),
        space=space.name,
        trials={s: states.count(s) for s in ("COMPLETE", "PRUNED", "FAIL")},
        **objectives.result(best),
    )
    return config, result
