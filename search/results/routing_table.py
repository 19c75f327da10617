"""The routing table: the search's routers against the single best LLM, kNN and the oracle on the
test split, each difference with a paired bootstrap 95% interval, said in words, and the router
to use (chosen on val, never on test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from router_models import load_router
from router_models.probs import prob_logit
from search import metrics as M
from search.data import RouterData
from search.data.scores import is_graded
from search.inference import predict
from search.results.baselines import knn_scores, tune_knn


@dataclass
class Routed:
    """A router's scores on val and test, and its routing offsets."""

    name: str
    test: torch.Tensor  # logits [Q_test, M]
    val: torch.Tensor  # logits [Q_val, M]
    offsets: list[float] | None = None
    note: str = ""
    correctness: bool = True  # whether its per-pair predictions mean anything


@dataclass
class Table:
    rows: list[dict[str, Any]] = field(default_factory=list)
    recommended: str | None = None
    text: str = ""
    # with costs: each router's accuracy-cost curve on test, and each single LLM's point
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    singles: dict[str, tuple[float, float]] = field(default_factory=dict)
    # with tasks: routing accuracy per task on test, for the recommended router and references
    tasks: list[dict[str, Any]] = field(default_factory=list)
    graded: bool = False  # scores in (0, 1) occur: the figures are mean scores


def load_routed(name: str, path: Path, data: RouterData) -> Routed:
    """A saved router's logits on val and test, with the offsets saved with it."""
    model, info = load_router(path)

    def logits(split: str) -> torch.Tensor:
        return predict(model, torch.from_numpy(data.split(split)[0].copy()))

    routing = info.get("routing") or {}
    note = f"margin {routing['margin']:.3f} on {routing['anchor_name']}" if "margin" in routing else ""
    return Routed(name, logits("test"), logits("val"), info["offsets"], note)


TASK_BEST = "best LLM per task (on train)"
ORACLE = "oracle (best LLM per question)"


def references(data: RouterData) -> list[Routed]:
    """The reference routers: the best LLM per task on train (with tasks), the single best LLM
    on train, and kNN (k tuned on val); the oracle is a row of its own."""
    _, y_tr, m_tr = data.split("train")
    n_val, n_test = (len(data.splits[s]) for s in ("val", "test"))
    best = data.single_best()
    k = tune_knn(data)
    per_task = []
    tasks = data.tasks
    if tasks is not None and data.task_names:
        t_tr, n_t = tasks[data.splits["train"]], len(data.task_names)

        def by_task(split: str) -> torch.Tensor:
            return M.task_best_scores(y_tr, m_tr, t_tr, tasks[data.splits[split]], n_t)

        per_task = [Routed(TASK_BEST, by_task("test"), by_task("val"), correctness=False)]
    return [
        *per_task,
        Routed(
            f"single best LLM ({data.model_names[best]})",
            M.single_best_scores(y_tr, m_tr, n_test),
            M.single_best_scores(y_tr, m_tr, n_val),
            correctness=False,
        ),
        Routed(
            f"kNN, cosine, k={k} (tuned on val)",
            prob_logit(knn_scores(data, "test", k)),
            prob_logit(knn_scores(data, "val", k)),
        ),
    ]


def routing_table(routers: list[Routed], data: RouterData) -> Table:
    """Rows for ``routers`` and the references, with intervals against kNN and the single best."""
    _, y, m = data.split("test")
    _, yv, mv = data.split("val")
    refs = references(data)
    single, knn = refs[-2:]
    table = Table(graded=is_graded(data.Y, data.mask))
    outcomes = {r.name: M.routed_correct(r.test, y, m, r.offsets) for r in (*routers, *refs)}
    for i, r in enumerate((*routers, *refs)):
        row: dict[str, Any] = {
            "router": r.name,
            "note": r.note,
            "route_acc": float(outcomes[r.name].mean()),
            "correctness_acc": M.correctness_acc(r.test, y, m) if r.correctness else None,
            "val_route_acc": M.route_acc(r.val, yv, mv, r.offsets),
        }
        if i < len(routers):
            for ref, key in ((knn, "vs_knn"), (single, "vs_single_best")):
                diff, low, high = M.paired_bootstrap(outcomes[r.name], outcomes[ref.name])
                row[key] = {"difference": diff, "low": low, "high": high, "verdict": M.verdict(low, high)}
        table.rows.append(row)
    table.rows.append(
        {
            "router": ORACLE,
            "note": "",
            "route_acc": M.oracle_route_acc(y, m),
            "correctness_acc": None,
            "val_route_acc": M.oracle_route_acc(yv, mv),
        }
    )
    if routers:
        best = max(table.rows[: len(routers)], key=lambda row: row["val_route_acc"])
        table.recommended = best["router"]
    if data.has_costs:
        _cost_rows(table, [*routers, knn], data)
    if data.tasks is not None and data.task_names:
        rec = next((r for r in routers if r.name == table.recommended), None)
        outcomes_by = {
            **({"recommended": M.routed_outcomes(rec.test, y, m, rec.offsets)} if rec else {}),
            "single_best": M.routed_outcomes(single.test, y, m),
            "task_best": M.routed_outcomes(refs[0].test, y, m),
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
    ("single_best", "single best"),
    ("task_best", "best per task"),
    ("oracle", "oracle"),
]


def _interval(c: dict[str, float]) -> str:
    return f"{100 * c['difference']:+.2f} [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"


def format_table(table: Table, n_test: int) -> str:
    width = max(len(r["router"]) for r in table.rows)
    lines = [f"{'router (test split, ' + str(n_test) + ' questions)':<{width}}  routing acc  correctness acc"]
    if table.graded:
        lines.append("(graded scores: routing is the mean score of the chosen LLM; README, Graded scores)")
    for r in table.rows:
        corr = f"{r['correctness_acc']:.4f}" if r["correctness_acc"] is not None else "-"
        note = f"  ({r['note']})" if r["note"] else ""
        lines.append(f"{r['router']:<{width}}  {r['route_acc']:>11.4f}  {corr:>15}{note}")
    compared = [r for r in table.rows if "vs_knn" in r]
    if compared:
        lines.append("")
        lines.append(
            "routing accuracy difference in points, 95% paired bootstrap interval on test questions:"
        )
        for r in compared:
            knn, single = r["vs_knn"], r["vs_single_best"]
            lines.append(
                f"  {r['router']}: vs kNN {_interval(knn)}, {knn['verdict']}; "
                f"vs single best {_interval(single)}, {single['verdict']}"
            )
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
        columns = TASK_COLUMNS
        lines += [
            "  " + line
            for line in M.format_tasks(table.tasks, [c for c in columns if c[0] in table.tasks[0]])
        ]
    if table.recommended:
        rec = next(r for r in table.rows if r["router"] == table.recommended)
        others = ", ".join(f"{r['val_route_acc']:.4f} for {r['router']}" for r in compared if r is not rec)
        lines.append(
            f"recommended: {rec['router']} (val routing {rec['val_route_acc']:.4f}"
            + (f" vs {others}" if others else "")
            + "; chosen on val, not on test)"
        )
    return "\n".join(lines)


def run_routing_table(routers: list[tuple[str, Path]], data: RouterData) -> Table:
    """The table for saved routers (name, path)."""
    return routing_table([load_routed(name, path, data) for name, path in routers], data)
