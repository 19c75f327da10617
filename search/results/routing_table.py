"""The routing table: the search's routers against the single best LLM, kNN and the oracle on the
test split, each difference with a paired bootstrap 95% interval, said in words, and the router
to use (chosen on val, never on test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from router_models import load_router
from search import metrics as M
from search.data import RouterData
from search.results.baselines import knn_scores, tune_knn
from search.trial.train import predict


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


def load_routed(name: str, path: Path, data: RouterData) -> Routed:
    """A saved router's logits on val and test, with the offsets saved with it."""
    model, info = load_router(path)

    def logits(split: str) -> torch.Tensor:
        return predict(model, torch.from_numpy(data.split(split)[0].copy()))

    routing = info.get("routing") or {}
    note = f"margin {routing['margin']:.3f} on {routing['anchor_name']}" if "margin" in routing else ""
    return Routed(name, logits("test"), logits("val"), info["offsets"], note)


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.logit(p.clamp(1e-4, 1 - 1e-4))


def references(data: RouterData) -> list[Routed]:
    """The reference routers: single best LLM on train, kNN (k tuned on val), the oracle."""
    _, y_tr, m_tr = data.split("train")
    n_val, n_test = (len(data.splits[s]) for s in ("val", "test"))
    best = M.single_best(y_tr, m_tr)
    k = tune_knn(data)
    return [
        Routed(
            f"single best LLM ({data.model_names[best]})",
            M.single_best_scores(y_tr, m_tr, n_test),
            M.single_best_scores(y_tr, m_tr, n_val),
            correctness=False,
        ),
        Routed(
            f"kNN, cosine, k={k} (tuned on val)",
            _logit(knn_scores(data, "test", k)),
            _logit(knn_scores(data, "val", k)),
        ),
    ]


def routing_table(routers: list[Routed], data: RouterData) -> Table:
    """Rows for ``routers`` and the references, with intervals against kNN and the single best."""
    _, y, m = data.split("test")
    _, yv, mv = data.split("val")
    single, knn = references(data)
    table = Table()
    outcomes = {r.name: M.routed_correct(r.test, y, m, r.offsets) for r in (*routers, single, knn)}
    for i, r in enumerate((*routers, single, knn)):
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
            "router": "oracle (any LLM correct)",
            "note": "",
            "route_acc": M.oracle_route_acc(y, m),
            "correctness_acc": None,
            "val_route_acc": M.oracle_route_acc(yv, mv),
        }
    )
    if routers:
        best = max(table.rows[: len(routers)], key=lambda row: row["val_route_acc"])
        table.recommended = best["router"]
    table.text = format_table(table, len(data.splits["test"]))
    return table


def _interval(c: dict[str, float]) -> str:
    return f"{100 * c['difference']:+.2f} [{100 * c['low']:+.2f}, {100 * c['high']:+.2f}]"


def format_table(table: Table, n_test: int) -> str:
    width = max(len(r["router"]) for r in table.rows)
    lines = [f"{'router (test split, ' + str(n_test) + ' questions)':<{width}}  routing acc  correctness acc"]
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
