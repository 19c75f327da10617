"""The routing table: the search's routers against every baseline (the single best LLM, the best
LLM per task, kNN; each a router) and the oracle on the test split, each difference with a
paired bootstrap 95% interval, said in words, val and test side by side, and the router to use:
chosen on val (never on test) among the searched routers and the baselines, the simplest one
within val noise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from router_models import load_router
from search import metrics as M
from search.data import RouterData
from search.data.scores import is_graded
from search.results.baselines import BASELINES, KNN, SINGLE_BEST, TASK_BEST, baselines
from search.results.export import LEARNED_TRIAL_RANK, RouterEntry
from search.routing.inference import split_logits


@dataclass
class Routed:
    """A router's scores on val and test, its routing offsets, and what it is: ``kind``
    (``trial``, ``ensemble``, ``baseline``), a baseline's ``key``, its simplicity ``rank``."""

    name: str
    test: torch.Tensor  # logits [Q_test, M]
    val: torch.Tensor  # logits [Q_val, M]
    offsets: list[float] | None = None
    note: str = ""
    correctness: bool = True  # whether its per-pair predictions mean anything
    kind: str = "trial"
    key: str = ""
    rank: int = LEARNED_TRIAL_RANK


@dataclass
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)
    recommended: str | None = None
    text: str = ""
    # how the recommended router was chosen on val (``recommend``)
    recommendation: dict[str, Any] = field(default_factory=dict)
    # with costs: each router's accuracy-cost curve on test, and each single LLM's point
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    singles: dict[str, tuple[float, float]] = field(default_factory=dict)
    # with tasks: routing accuracy per task on test, for the recommended router and references
    tasks: list[dict[str, Any]] = field(default_factory=list)
    graded: bool = False  # scores in (0, 1) occur: the figures are mean scores


def routed(
    name: str,
    model: torch.nn.Module,
    info: dict[str, Any],
    data: RouterData,
    kind: str = "trial",
    key: str = "",
    rank: int = LEARNED_TRIAL_RANK,
) -> Routed:
    """A router's logits on val and test (with the splits' tasks) and its saved offsets."""
    routing = info.get("routing") or {}
    note = f"margin {routing['margin']:.3f} on {routing['anchor_name']}" if "margin" in routing else ""
    # the baselines' per-pair predictions: the single best and best per task predict one
    # probability per LLM (per task), not a question's; kNN's are a vote, which counts
    correctness = key not in (SINGLE_BEST, TASK_BEST)
    return Routed(
        name,
        split_logits(model, data, "test"),
        split_logits(model, data, "val"),
        info.get("offsets"),
        note,
        correctness,
        kind,
        key,
        rank,
    )


def load_routed(entry: RouterEntry, data: RouterData) -> Routed:
    """A saved router's logits on val and test, with the offsets saved with it."""
    model, info = load_router(entry.path)
    return routed(entry.name, model, info, data, entry.kind, entry.key, entry.rank)


ORACLE = "oracle (best LLM per question)"


def baseline_routed(data: RouterData) -> list[Routed]:
    """The baselines fitted anew (for a table without saved baseline files)."""
    return [
        routed(
            b.name,
            b.model,
            {"offsets": b.routing["offsets"]},
            data,
            "baseline",
            b.key,
            BASELINES.index(b.key),
        )
        for b in baselines(data)
    ]


def routing_table(
    routers: list[Routed], data: RouterData, refs: list[Routed] | None = None, recommend: bool = True
) -> Table:
    """Rows for ``routers`` and the baselines ``refs`` (fitted here when None), each searched
    router with paired intervals against every baseline on test, val and test side by side, and
    the recommended router: chosen on val among the routers and (``recommend``) the baselines,
    the simplest within val noise (``metrics.simplest_within_noise``); without ``recommend``
    (a run over several objectives, whose pick is the user's rule) among the routers only."""
    _, y, m = data.split("test")
    _, yv, mv = data.split("val")
    refs = [r for r in routers if r.kind == "baseline"] + (refs if refs is not None else [])
    routers = [r for r in routers if r.kind != "baseline"]
    if not any(r.kind == "baseline" for r in refs):
        refs = baseline_routed(data)
    by_key = {r.key: r for r in refs}
    table = Table(graded=is_graded(data.Y, data.mask))
    everyone = (*routers, *refs)
    outcomes = {r.name: M.routed_correct(r.test, y, m, r.offsets) for r in everyone}
    for r in everyone:
        row: dict[str, Any] = {
            "router": r.name,
            "kind": r.kind,
            "baseline": r.key or None,
            "note": r.note,
            "route_acc": float(outcomes[r.name].mean()),
            "correctness_acc": M.correctness_acc(r.test, y, m) if r.correctness else None,
            "val_route_acc": M.route_acc(r.val, yv, mv, r.offsets),
        }
        if r.kind != "baseline":
            for ref in refs:
                diff, low, high = M.paired_bootstrap(outcomes[r.name], outcomes[ref.name])
                row[f"vs_{ref.key}"] = {
                    "baseline": ref.name,
                    "difference": diff,
                    "low": low,
                    "high": high,
                    "verdict": M.verdict(low, high),
                }
        table.rows.append(row)
    table.rows.append(
        {
            "router": ORACLE,
            "kind": "oracle",
            "baseline": None,
            "note": "",
            "route_acc": M.oracle_route_acc(y, m),
            "correctness_acc": None,
            "val_route_acc": M.oracle_route_acc(yv, mv),
        }
    )
    candidates = [*routers, *(refs if recommend or not routers else [])]
    if candidates:
        val_out = {r.name: M.routed_correct(r.val, yv, mv, r.offsets) for r in candidates}
        chosen, best, (diff, low, high) = M.simplest_within_noise(
            val_out, {r.name: r.rank for r in candidates}
        )
        kind = next(r.kind for r in candidates if r.name == chosen)
        table.recommended = chosen
        table.recommendation = {
            "router": chosen,
            "kind": kind,
            "best_on_val": best,
            "vs_best_on_val": {"difference": diff, "low": low, "high": high},
            "rule": "the simplest router whose val routing is not significantly below the best on val "
            "(95% paired bootstrap on val questions)",
        }
    if data.has_costs:
        _cost_rows(table, [*routers, *refs], data)
    if data.tasks is not None and data.task_names:
        rec = next((r for r in everyone if r.name == table.recommended), None)
        outcomes_by = {
            **({"recommended": M.routed_outcomes(rec.test, y, m, rec.offsets)} if rec else {}),
            **{
                key: M.routed_outcomes(by_key[key].test, y, m)
                for key in (SINGLE_BEST, TASK_BEST)
                if key in by_key
            },
            "oracle": M.oracle_outcomes(y, m),
        }
        table.tasks = M.per_task(outcomes_by, data.tasks[data.splits["test"]], data.task_names)
    table.text = format_table(table, len(data.splits["test"]))
    return table


def _cost_rows(table: Table, routers: list[Routed], data: RouterData) -> None:
    """Accuracy against cost on test for each router, kNN and the oracle, and what each buys
    against the single best LLM."""
    _, y, m = data.split("test")
    yt, mt = torch.from_numpy(y), torch.from_numpy(m)
    cost = torch.from_numpy(data.split_cost("test"))
    mean = torch.from_numpy(data.mean_cost())
    lambdas = M.lambda_grid(mean)
    low, high = M.cost_range(cost, mt)
    _, y_tr, m_tr = data.split("train")
    best = data.single_best()
    answerable = mt.any(dim=1)
    for j, name in enumerate(data.model_names):
        observed = mt[:, j] & answerable
        table.singles[name] = (
            float(cost[answerable, j].mean()),
            float(yt[observed, j].mean()) if observed.any() else 0.0,
        )
    ref_cost, ref_acc = (
        float(cost[answerable, best].mean()),
        M.route_acc(M.single_best_scores(y_tr, m_tr, len(y)), y, m),
    )
    oracle = Routed(ORACLE, torch.where(mt, yt * 20 - 10, torch.full_like(yt, -20.0)), yt)
    for r in (*routers, oracle):
        accs, costs = M.cost_curve(r.test, yt, mt, cost, mean, lambdas)
        table.curves[r.name] = (costs.tolist(), accs.tolist())
        row = next(x for x in table.rows if x["router"] == r.name)
        row["costs"] = {
            "aiq": M.aiq(costs, accs, low, high),
            **M.budget_figures(costs, accs, ref_cost, ref_acc),
            "reference": data.model_names[best],
            "reference_cost": ref_cost,
        }


TASK_COLUMNS = [
    ("recommended", "recommended"),
    (SINGLE_BEST, "single best"),
    (TASK_BEST, "best per task"),
    ("oracle", "oracle"),
]
SHORT = {SINGLE_BEST: "single best", TASK_BEST: "best per task", KNN: "kNN"}
SHOWN_TASKS = 40  # per-task rows printed (the tasks with the most test questions)


def _interval(c: dict[str, float]) -> str:
    return f"{100 * c['difference']:+.2f} [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"


def format_table(table: Table, n_test: int) -> str:
    width = max(len(r["router"]) + (11 if r["kind"] == "baseline" else 0) for r in table.rows)
    head = f"router ({n_test} test questions)"
    lines = [f"{head:<{width}}  val routing  test routing  correctness acc"]
    if table.graded:
        lines.append("(graded scores: routing is the mean score of the chosen LLM; README, Graded scores)")
    for r in table.rows:
        corr = f"{r['correctness_acc']:.4f}" if r["correctness_acc"] is not None else "-"
        note = f"  ({r['note']})" if r["note"] else ""
        name = r["router"] + (" [baseline]" if r["kind"] == "baseline" else "")
        lines.append(
            f"{name:<{width}}  {r['val_route_acc']:>11.4f}  {r['route_acc']:>12.4f}  {corr:>15}{note}"
        )
    compared = [r for r in table.rows if any(k.startswith("vs_") for k in r)]
    if compared:
        lines.append("")
        lines.append(
            "test routing difference to each baseline, in points, 95% paired bootstrap interval on "
            "test questions:"
        )
        for r in compared:
            parts = [
                f"vs {SHORT.get(k.removeprefix('vs_'), k.removeprefix('vs_'))} {_interval(c)}, {c['verdict']}"
                for k, c in r.items()
                if k.startswith("vs_")
            ]
            lines.append(f"  {r['router']}: " + "; ".join(parts))
    costed = [r for r in table.rows if "costs" in r]
    if costed:
        c0 = costed[0]["costs"]
        lines.append("")
        lines.append(
            f"costs: as the willingness to pay varies; against the single best LLM ({c0['reference']}, "
            f"{c0['reference_cost']:.6g} per query):"
        )
        for r in costed:
            c = r["costs"]
            share = (
                f"{100 * c['cost_share_for_95pct']:.0f}% of its cost"
                if c["cost_share_for_95pct"]
                else "never"
            )
            lines.append(
                f"  {r['router']}: AIQ {c['aiq']:.4f}; accuracy at <= 50% of its cost "
                f"{c['acc_at_half_cost']:.4f}; 95% of its accuracy for {share}"
            )
    if table.tasks:
        lines.append("")
        lines.append("routing per task (test; mean score of the chosen LLM):")
        columns = [c for c in TASK_COLUMNS if c[0] in table.tasks[0]]
        shown = sorted(table.tasks, key=lambda r: -int(r["questions"]))[:SHOWN_TASKS]
        shown.sort(key=lambda r: table.tasks.index(r))
        lines += ["  " + line for line in M.format_tasks(shown, columns)]
        if len(table.tasks) > SHOWN_TASKS:
            more = len(table.tasks) - SHOWN_TASKS
            lines.append(f"  ... {more:,} more tasks (the largest are shown; all in routing.json)")
    if table.recommended:
        lines += ["", recommendation_text(table)]
    return "\n".join(lines)


def recommendation_text(table: Table) -> str:
    """The recommendation in words: which router, whether it is a baseline, why, and its val
    and test routing side by side."""
    rec = table.recommendation
    row = next(r for r in table.rows if r["router"] == table.recommended)
    figures = f"val routing {row['val_route_acc']:.4f}, test {row['route_acc']:.4f}"
    best = rec.get("best_on_val")
    baseline = rec.get("kind") == "baseline"
    head = f"recommended: {table.recommended}"
    if best is None or best == table.recommended:
        why = "the best on val" + (": no searched router routes better there" if baseline else "")
        head += " -- a baseline, " + why if baseline else f" ({why}"
        if baseline:
            return f"{head} ({figures}; chosen on val, not on test)"
        return f"{head}; {figures}; chosen on val, not on test)"
    other = next(r for r in table.rows if r["router"] == best)
    why = (
        f"the best on val, {best} ({other['val_route_acc']:.4f}), is not significantly better "
        f"({_interval(rec['vs_best_on_val'])} points on val), so the simpler router"
    )
    if baseline:
        head += " -- a baseline: no searched router routes significantly better on val"
    return f"{head} ({why}; {figures}; chosen on val, not on test)"


def run_routing_table(routers: list[RouterEntry], data: RouterData, recommend: bool = True) -> Table:
    """The table for a run's saved routers (searched ones and baselines)."""
    return routing_table([load_routed(e, data) for e in routers], data, recommend=recommend)
