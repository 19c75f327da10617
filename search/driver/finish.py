"""The end of ``search run``: results.parquet, the best config and router, the ensemble, the
routing table; and which trial routers stay on storage."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna
from optuna.trial import TrialState

from router_models import load_router, router_config, save_router
from router_models.checkpoint import set_routing
from search.data import RouterData
from search.data.leakage import find_leakage
from search.driver.plan import RunPlan
from search.errors import UserError
from search.files.atomic import atomic_write_bytes, write_json, write_parquet
from search.files.remote import exists, get_bytes, keep_routers
from search.files.rundir import RunDir, trial_router_uri
from search.log import logger
from search.metrics.direction import Direction
from search.results.baselines import Baseline, baselines
from search.results.ensemble import Ensemble, Label, build_ensemble, load_trial_routers
from search.results.export import RouterEntry, best_config, routers_of, trial_rows
from search.results.front_export import write_front
from search.results.routing_table import run_routing_table
from search.results.run_files import RoutingRecord
from search.routing.inference import val_logits
from search.routing.offsets import budget_routing
from search.study.keepers import Keeper
from search.study.objectives import objectives_of, pick_weights

log = logger("driver")


def router_keeper(plan: RunPlan, study: optuna.Study) -> Keeper:
    """Keeps the routers the end of the run may need: each model type's best
    ``ensemble.candidates`` trials for stacking (just its best when ensembles are off), or the
    front's (``Objectives.keeper``)."""
    spec = plan.space.search.ensemble
    keep = spec.candidates if spec.size > 0 else 1
    space = plan.space
    return objectives_of(study, space.search).keeper(
        plan.storage, keep, lambda t: space.model_type_of(t.params)
    )


def _ensemble(
    plan: RunPlan,
    study: optuna.Study,
    data: RouterData,
    keeper: Keeper,
    encoder: str,
    refs: list[Baseline],
) -> tuple[Ensemble | None, str]:
    """Stacking over the kept trials (the best of each model type) and the baselines; the
    ensemble, or None and why none was built."""
    spec = plan.space.search.ensemble
    if spec.size < 1:
        return None, "ensembles are off (search.ensemble.size is 0)"
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    # Members average over one input: the trials that chose the best trial's encoder.
    candidates = [n for n in keeper.numbers if plan.space.encoder_of(by_number[n].params) == encoder]
    routers: dict[Label, tuple[Any, dict[str, Any]]] = dict(load_trial_routers(plan.storage, candidates))
    for b in refs:
        routers[b.key] = (b.model, {"config": router_config(b.model)})
    ens, why = build_ensemble(routers, data, plan.space.search.primary, spec.size)
    if ens is None:
        return None, why
    save_router(
        ens.model,
        RunDir(plan.run_dir).ensemble_router,
        **data.saved_with(),
        routing=ens.routing,
        trials=ens.trials,
        baselines=[n for n in ens.members if isinstance(n, str)],
        data_source=data.source,
    )
    members = []
    for i, (n, w) in enumerate(zip(ens.members, ens.weights)):
        model_type = ens.model.member_configs[i]["model_type"]
        if isinstance(n, str):
            members.append({"baseline": n, "weight": w, "model_type": model_type})
        else:
            t = by_number[n]
            members.append(
                {
                    "trial": n,
                    "weight": w,
                    "model_type": t.user_attrs.get("model_type") or model_type,
                    "value": t.value,
                }
            )
    summary = {
        "router": RunDir.ENSEMBLE_ROUTER,
        "members": members,
        "picks": ens.picks,
        "candidates": [n if isinstance(n, int) else f"baseline {n}" for n in routers],
        "metric": plan.space.search.primary,
        "val": {"ensemble": abs(ens.val_score), "best_single": abs(ens.best_single_val_score)},
        "routing": {k: v for k, v in ens.routing.items() if k != "offsets"},
    }
    write_json(RunDir(plan.run_dir).ensemble_summary, summary)
    return ens, ""


def family_bests(study: optuna.Study, space: Any, encoder: str = "") -> dict[str, int]:
    """Each model type's best completed trial (by the search metric) among those that chose
    ``encoder`` (they read the same embeddings as the exported router): model type -> number."""
    direction = Direction.of_study(study)
    out: dict[str, int] = {}
    best: dict[str, float] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.value is None or space.encoder_of(t.params) != encoder:
            continue
        kind = space.model_type_of(t.params)
        if kind not in best or direction.key(t.value) < direction.key(best[kind]):
            out[kind], best[kind] = t.number, float(t.value)
    return out


def _save_baselines(plan: RunPlan, data: RouterData, refs: list[Baseline]) -> dict[str, str]:
    """Each baseline as a router file in the run dir; key -> its name in the table."""
    for b in refs:
        save_router(
            b.model,
            RunDir(plan.run_dir).baseline_router(b.key),
            **data.saved_with(),
            routing=b.routing,
            baseline=b.key,
            baseline_name=b.name,
            data_source=data.source,
        )
    return {b.key: b.name for b in refs}


def _apply_budget(routers: list[RouterEntry], data: RouterData, budget: float) -> dict[str, Any]:
    """Set every exported router's routing (baselines too) to the willingness to pay meeting
    ``budget`` on val; returns the first router's (the best trial's, for config.json)."""
    first: dict[str, Any] = {}
    for entry in routers:
        name, path = entry.name, entry.path
        model, _ = load_router(path)
        routing = budget_routing(val_logits(model, data), data, budget)
        set_routing(path, routing)
        first = first or {k: v for k, v in routing.items() if k != "offsets"}
        if not routing["met"]:
            log.warning(
                f"warning: {name}: no routing meets a mean cost of {budget:g} per query on val; "
                f"the cheapest costs {routing['val_cost']:.6g}"
            )
    return first


def finish(plan: RunPlan, study: optuna.Study, datas: dict[str, RouterData]) -> int:
    """Write results.parquet always; config.json, best_router.pt and the ensemble when a trial
    completed. With an encoder choice, the best trial's encoder's data is the one the routers
    read, and the ensemble's members share that encoder."""
    space = plan.space
    data = next(iter(datas.values()))
    rows = trial_rows(study, space)
    write_parquet(RunDir(plan.run_dir).results, rows)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    objectives = objectives_of(study, space.search)
    if objectives.recommends:  # a front is shown as a front, below
        print_table(rows, space.search.primary, space.search.direction)
    if not complete:
        errors = [r["error"] for r in rows if r["state"] == "FAIL" and r["error"]]
        first = errors[0] if errors else "no trial completed"
        log.error(f"error: no trial completed; first error: {first}")
        return 1
    points = objectives.front()
    chosen = objectives.exported(plan.pick)
    encoder = space.encoder_of(chosen.params)
    data = datas[encoder]
    config, result = best_config(
        study, space, data.source, data.embedding_dim, dataclasses.asdict(plan.data_options), trial=chosen
    )
    best = chosen.number
    uri = trial_router_uri(plan.storage, best)
    if exists(uri):
        atomic_write_bytes(RunDir(plan.run_dir).best_router, get_bytes(uri))
    else:
        log.warning(f"warning: trial {best}'s router not found at {uri}; {RunDir.BEST_ROUTER} not written")
    front: list[int] = []
    if points:  # a front: its files, and how config.json's point was picked from it
        weights = pick_weights(space.search.objectives, plan.pick)
        pareto = write_front(plan.run_dir, plan.storage, points, space, best, weights)
        front = [p["trial"] for p in pareto["front"]]
        result.pareto = {"file": RunDir.PARETO, "trials": front, **pareto_pick(pareto)}
        print_front(pareto)
    refs = baselines(data)
    result.baselines = _save_baselines(plan, data, refs)
    if objectives.no_ensemble is not None:
        ens, why = None, objectives.no_ensemble
    else:
        ens, why = _ensemble(plan, study, data, router_keeper(plan, study), encoder, refs)
    if ens is None:
        log.info(f"no ensemble: {why}")
    # The best router, each model type's best, the ensemble's members and the front stay, so a
    # later --resume can export and assemble again (and each family's best can be compared);
    # every other trial router goes.
    families = family_bests(study, space, encoder) if objectives.per_family else {}
    result.family_bests = families
    for family, number in families.items():
        uri = trial_router_uri(plan.storage, number)
        if number != best and exists(uri):
            atomic_write_bytes(RunDir(plan.run_dir).family_router(family), get_bytes(uri))
    keep_routers(plan.storage, {best, *families.values(), *(ens.trials if ens else ()), *front})
    if ens is not None:
        result.ensemble = {
            "router": RunDir.ENSEMBLE_ROUTER,
            "summary": RunDir.ENSEMBLE_SUMMARY,
            "trials": ens.trials,
            "baselines": [n for n in ens.members if isinstance(n, str)],
            "weights": ens.weights,
        }
    routers = routers_of(plan.run_dir, config["pipeline_config"]["model_type"], result)
    if plan.budget is not None:
        result.routing = _apply_budget(routers, data, plan.budget)
        by_number = {t.number: t for t in complete}
        for n in front:
            path = RunDir(plan.run_dir).path / RunDir.pareto_router_name(n)
            if path.exists():
                own = datas[space.encoder_of(by_number[n].params)]
                _apply_budget([RouterEntry(f"trial {n}", path)], own, plan.budget)
    table = run_routing_table(routers, data, recommend=objectives.recommends) if routers else None
    if table is not None and table.recommended:
        entry = next(e for e in routers if e.name == table.recommended)
        result.recommended = {
            "router": table.recommended,
            "file": entry.path.relative_to(plan.run_dir).as_posix(),
            "kind": entry.kind,
        }
    config["search_result"] = result.to_dict()  # the one writer of the block
    write_json(RunDir(plan.run_dir).config, config)
    try:
        write_json(plan.export, config)
    except OSError as exc:
        raise UserError(
            f"--export {plan.export}: could not write it ({exc.strerror}); the results are in "
            f"{plan.run_dir} (config.json, {RunDir.BEST_ROUTER})"
        ) from exc
    if table is not None:
        RoutingRecord(
            table.rows,
            table.recommended,
            table.recommendation,
            table.tasks,
            table.graded,
            find_leakage(data).to_dict(),
        ).write(plan.run_dir)
        log.info("\n" + table.text)
    counts = result.trials
    log.info(
        f"{objectives.word}: trial {best}, {result.metric} {result.value:.4f}; "
        f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed"
        + (f"; ensemble of {len(ens.members)} routers ({ens.picks} picks)" if ens else "")
    )
    extra = f", {RunDir.ENSEMBLE_ROUTER}, {RunDir.ENSEMBLE_SUMMARY}" if ens else ""
    extra += f", {len(refs)} baseline routers in {RunDir.BASELINES}/"
    extra += f", {RunDir.PARETO} and {len(front)} routers in {RunDir.PARETO_ROUTERS}/" if front else ""
    log.info(f"wrote {plan.export}, {plan.run_dir}/config.json, {RunDir.BEST_ROUTER}{extra}, results.parquet")
    if data.encoder is not None:
        log.info(f'route new queries with: python -m search route {plan.run_dir} --text "a prompt"')
    else:
        log.info(f"route new queries with: python -m search route {plan.run_dir} QUERY_EMBEDDINGS.npy")
    return 0


def pareto_pick(pareto: dict[str, Any]) -> dict[str, Any]:
    """How config.json's point was picked from ``pareto.json``'s front."""
    return {"picked": pareto["picked"], "weights": pareto["weights"], "rule": pareto["rule"]}


def print_front(pareto: dict[str, Any]) -> None:
    """The front, one line per point, the picked one marked."""
    names = [o["metric"] for o in pareto["objectives"]]
    table = [["", "trial", *names, "model_type"]] + [
        [
            "*" if p["trial"] == pareto["picked"] else "",
            str(p["trial"]),
            *(f"{p['values'][n]:.4g}" for n in names),
            str(p.get("model_type") or "-"),
        ]
        for p in pareto["front"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    log.info(f"\nPareto front: {len(pareto['front'])} trials (* picked: {pareto['rule']})")
    for row in table:
        log.info("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def print_table(rows: list[dict[str, Any]], metric: str, direction: str, top: int = 8) -> None:
    done = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    done.sort(key=lambda r: Direction(direction).key(r["value"]))
    if not done:
        return
    keys = ["model_type", *(k for k in done[0] if k.startswith("param_"))]
    keys = [k for k in keys if any(r.get(k) is not None for r in done[:top])]
    header = ["trial", metric, "ran", *(k.removeprefix("param_") for k in keys)]
    table = [header] + [
        [str(r["trial"]), f"{r['value']:.4f}", str(r["epochs_run"]), *(_short(r.get(k)) for k in keys)]
        for r in done[:top]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    log.info(f"\ntop {len(table) - 1} of {len(done)} completed trials:")
    for row in table:
        log.info("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def _short(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
