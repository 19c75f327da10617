"""Human-readable summaries of router data (``search data describe``)."""

from __future__ import annotations

from search import metrics as M
from search.data import SPLITS, RouterData
from search.data.leakage import find_leakage
from search.data.scores import is_graded


def describe(data: RouterData, top: int = 10) -> str:
    """Questions / models / pairs per split, positive rate, per-model accuracy, baselines."""
    lines = [
        f"source: {data.source}",
        f"questions: {sum(len(v) for v in data.splits.values())}   models: {data.num_models}   "
        f"embedding dim: {data.embedding_dim}",
        f"texts: {_texts(data)}",
        f"embeddings: {_embeddings(data)}",
        f"scores: {_scores(data)}",
        *data.notes,
        "",
        f"{'split':<6} {'questions':>9} {'pairs':>9} {'mean score':>10} {'single best':>11} {'oracle':>7}",
    ]
    _, y_tr, m_tr = data.split("train")
    for split in SPLITS:
        _, y, m = data.split(split)
        pairs = int(m.sum())
        pos = float(y[m].mean()) if pairs else float("nan")
        base = M.baselines(y_tr, m_tr, y, m)
        lines.append(
            f"{split:<6} {len(data.splits[split]):>9} {pairs:>9} {pos:>10.3f} "
            f"{base['single_best_route_acc']:>11.4f} {base['oracle_route_acc']:>7.4f}"
        )
    acc = M.model_accuracy(y_tr, m_tr).tolist()
    observed = m_tr.sum(0)
    order = sorted(range(data.num_models), key=lambda i: -(acc[i] if acc[i] == acc[i] else -1))
    best = order[0]
    lines += [
        "",
        f"single best model (on train): {data.model_names[best]} ({acc[best]:.4f})",
        f"per-model train accuracy ({min(top, data.num_models)} best of {data.num_models}; "
        "--all for every model):"
        if top < data.num_models
        else "per-model train accuracy:",
    ]
    width = max(len(n) for n in data.model_names)
    cost = data.mean_cost().tolist() if data.has_costs else None
    for i in order[:top]:
        shown = f"  cost per query {cost[i]:.6g}" if cost is not None else ""
        lines.append(f"  {data.model_names[i]:<{width}}  {acc[i]:.4f}  ({int(observed[i])} pairs){shown}")
    if cost is not None:
        cheapest = min(range(data.num_models), key=lambda i: cost[i])
        lines += [
            "",
            f"costs: mean cost per query on train, from {min(cost):.6g} ({data.model_names[cheapest]}) "
            f"to {max(cost):.6g}; the single best model costs {cost[best]:.6g}",
        ]
    else:
        lines += ["", "costs: none in this data"]
    if data.tasks is not None and data.task_names:
        _, y, m = data.split("test")
        t_tr, t_te = data.tasks[data.splits["train"]], data.tasks[data.splits["test"]]
        n_t = len(data.task_names)
        outcomes = {
            "single_best": M.routed_outcomes(M.single_best_scores(y_tr, m_tr, len(y)), y, m),
            "task_best": M.routed_outcomes(M.task_best_scores(y_tr, m_tr, t_tr, t_te, n_t), y, m),
            "oracle": M.oracle_outcomes(y, m),
        }
        rows = M.per_task(outcomes, t_te, data.task_names)
        per_task = M.task_best(y_tr, m_tr, t_tr, n_t)
        for row in rows:
            row["best LLM"] = data.model_names[per_task[data.task_names.index(str(row["task"]))]]
        lines += ["", f"tasks: {n_t}; routing per task on test (mean score of the chosen LLM):"]
        columns = [("single_best", "single best"), ("task_best", "best per task"), ("oracle", "oracle")]
        lines += ["  " + line for line in M.format_tasks(rows, columns, label="best LLM")]
    lines += ["", *find_leakage(data).lines()]
    return "\n".join(lines)


def _scores(data: RouterData) -> str:
    if is_graded(data.Y, data.mask):
        return "graded (in [0, 1]; trained as soft targets, routing is the chosen LLM's mean score)"
    return "0/1 correctness"


def _texts(data: RouterData) -> str:
    if data.texts is None:
        return "none (embeddings only)"
    template = (data.encoder or {}).get("template")
    shown = f", as embedded with the template {template!r}" if template else ""
    return f"{len(data.texts):,}{shown}"


def _embeddings(data: RouterData) -> str:
    if data.encoder is None:
        return f"{data.embedding_dim}-d, precomputed by an encoder nobody recorded"
    e = data.encoder
    norm = ", normalized" if e.get("normalize") else ""
    return (
        f"{data.embedding_dim}-d by {e.get('name')} ({e.get('pooling')} pooling{norm}, max "
        f"{e.get('max_seq_length')} tokens, files sha256 {str(e.get('sha256'))[:12]})"
    )
