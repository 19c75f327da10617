"""``search route``: send new queries to LLMs with a saved router.

The queries are embeddings (a file), prompts (``--text``, repeatable) or a prompts file
(``--prompts``); prompts are embedded with the router's recorded encoder (``search/router.py``).
A router with a task prior reads each query's task: ``--task`` for all, or a prompts file's
``task`` (or ``category``) field; a query without one takes the task nearest it.
The decision is the one the routing table measured: the router's predicted correctness plus the
offsets saved with it (the switching margin tuned on val, or ``-lambda x cost`` for a budget),
argmax over LLMs. One row per query, in the order given. Given a run dir, the router the run
recommends (chosen on val) routes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from search.data.prompts import read_prompts
from search.data.tables import load_matrix
from search.errors import UserError
from search.io import write_table
from search.paths import check_file_target
from search.router import Decision, Router

FORMATS = (".csv", ".parquet")
SCORE_PREFIX = "p|"  # a per-LLM score column: p|<llm>, as wide tables name cost columns <llm>|...


def routes_table(decision: Decision, names: list[str], scores: bool = False) -> pa.Table:
    """One row per query: the chosen LLM (name and index) and its predicted correctness; with
    ``scores``, every LLM's predicted correctness too."""
    columns: dict[str, Any] = {
        "query": np.arange(len(decision.index)),
        "llm": decision.names,
        "llm_index": decision.index,
        "predicted_correctness": decision.chosen_scores,
    }
    if scores:
        columns.update({f"{SCORE_PREFIX}{name}": decision.scores[:, j] for j, name in enumerate(names)})
    return pa.table(columns)


def run_route(
    router: str,
    embeddings: str | None,
    out: str,
    plain: bool = False,
    scores: bool = False,
    texts: list[str] | None = None,
    prompts: str | None = None,
    encoder: str | None = None,
    budget: float | None = None,
    lam: float | None = None,
    task: str | None = None,
) -> int:
    given = [what for what, v in (("EMBEDDINGS", embeddings), ("--text", texts), ("--prompts", prompts)) if v]
    if len(given) != 1:
        raise UserError(
            "route: give the queries one way: EMBEDDINGS (a .npy/.pth file), --text PROMPT (repeatable) "
            f"or --prompts FILE{'; got ' + ' and '.join(given) if given else ''}"
        )
    out_path = Path(out)
    if out_path.suffix not in FORMATS:
        raise UserError(f"--out {out}: give a {' or '.join(FORMATS)} file")
    check_file_target(out_path, "--out")
    r = Router.load(router, encoder=encoder)
    chosen = f"; the run's recommended router, {r.chosen}" if r.chosen else ""
    offsets = r.offsets_for(plain, lam, budget)  # before embedding: a bad budget fails at once
    tasks: list[str | None] = []
    if embeddings is not None:
        X = r.check_embeddings(load_matrix(Path(embeddings)), embeddings)
        tasks = [task] * len(X)
    else:
        r.encoder  # noqa: B018 - the router must embed text before its prompts are read
        queries = texts if texts else read_prompts(Path(str(prompts)), r.identity, tasks)
        if task is not None or not tasks:  # --task for every query
            tasks = [task] * len(queries)
        r.task_indices(tasks, len(queries))  # an unknown task fails before embedding
        X = r.embed(queries)
    decision = r.decide_logits(r.logits(X, tasks=tasks), offsets)
    table = routes_table(decision, r.names, scores)
    write_table(out_path, table)
    rule = "plain argmax" if plain else r.rule
    if budget is not None:
        rule = f"cost, budget {budget:g}: lambda {r.lambda_for_budget(budget):g} by the val cost curve"
    elif lam is not None:
        rule = f"cost, at lambda {lam:g}"
    with_task = sum(t is not None for t in tasks)
    if r.reads_tasks:
        rule += f"; {with_task} of {len(X)} queries with a task, the others the nearest task's"
    elif with_task:
        rule += "; the tasks given do not change this router's routing (it has no task prior)"
    print(f"routed {len(X)} queries with {r.path} ({rule}{chosen}); wrote {out_path}")
    counts = Counter(decision.names)
    for name, n in counts.most_common(5):
        print(f"  {name:<40} {n:>8}  {n / len(X):6.1%}")
    if len(counts) > 5:
        print(f"  ... {len(counts) - 5} more LLM(s)")
    return 0
