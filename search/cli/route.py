"""``search route``: send new queries to LLMs with a saved router.

The queries are embeddings (a file), prompts (``--text``, repeatable) or a prompts file
(``--prompts``); prompts are embedded with the router's recorded encoder (``search/routing/router.py``).
A router with a task prior reads each query's task: ``--task`` for all, or a prompts file's
``task`` (or ``category``) field; a query without one takes the task nearest it.
The decision is the one the routing table measured: the router's predicted correctness plus the
offsets saved with it (the switching margin tuned on val, or ``-lambda x cost`` for a budget),
argmax over LLMs. One row per query, in the order given. Given a run dir, the router the run
recommends (chosen on val) routes.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from search.data.prompts import BATCH, check_file, count_prompts, iter_prompts
from search.data.tables import load_matrix
from search.errors import UserError
from search.files.atomic import write_table
from search.files.paths import check_file_target
from search.routing.router import Decision, Router

FORMATS = (".csv", ".parquet")
SCORE_PREFIX = "p|"  # a per-LLM score column: p|<llm>, as wide tables name cost columns <llm>|...
SHOWN_TEXTS = 20  # --text routings said one per line, up to this many


def routes_table(
    decision: Decision, names: list[str], scores: bool = False, texts: list[str] | None = None
) -> pa.Table:
    """One row per query: the chosen LLM (name and index) and its predicted correctness; with
    ``scores``, every LLM's predicted correctness too; with ``texts`` (``--text``), the text."""
    columns: dict[str, Any] = {"query": np.arange(len(decision.index))}
    if texts is not None:
        columns["text"] = list(texts)
    columns.update(llm=decision.names, llm_index=decision.index, predicted_correctness=decision.chosen_scores)
    if scores:
        columns.update({f"{SCORE_PREFIX}{name}": decision.scores[:, j] for j, name in enumerate(names)})
    return pa.table(columns)


def _texts(texts: list[str]) -> list[str]:
    for i, text in enumerate(texts, 1):
        if not text.strip():
            raise UserError(f"--text {i}: the prompt is empty")
    return texts


def _from_file(r: Router, path: Path, task: str | None, offsets: list[float]) -> tuple[Decision, list]:
    """The prompts file routed a batch at a time (read as a stream: its length does not grow
    the memory held but for the decisions), after one line saying how many and about how long."""
    size = check_file(path)
    n = count_prompts(path)
    batches = iter_prompts(path, r.identity, BATCH)
    first, first_tasks = next(batches)
    probe = first[: min(len(first), 64)]
    start = time.perf_counter()
    r.embed(probe)
    rate = len(probe) / max(time.perf_counter() - start, 1e-6)
    print(
        f"routing {n:,} prompts from {path} ({size / 1e6:.1f} MB) in batches of {BATCH:,}; about "
        f"{n / rate:.0f} s at {rate:.0f} prompts/s on this machine",
        flush=True,
    )
    parts: list[Decision] = []
    tasks: list[str | None] = []
    done = 0
    for part, part_tasks in itertools.chain([(first, first_tasks)], batches):
        given = [task] * len(part) if task is not None else part_tasks
        r.task_indices(given, len(part))  # an unknown task fails before its batch is embedded
        parts.append(r.decide_logits(r.logits(r.embed(part), tasks=given), offsets))
        tasks += given
        done += len(part)
        if n > BATCH:
            print(f"  {done:,} of {n:,} routed", file=sys.stderr, flush=True)
    index = np.concatenate([d.index for d in parts])
    return Decision(
        index, [x for d in parts for x in d.names], np.concatenate([d.scores for d in parts])
    ), tasks


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
    if prompts is not None:
        check_file(Path(prompts))  # a device, a pipe or a file too large: before anything loads
    r = Router.load(router, encoder=encoder)
    chosen = f"; the run's recommended router, {r.chosen}" if r.chosen else ""
    offsets = r.offsets_for(plain, lam, budget)  # before embedding: a bad budget fails at once
    tasks: list[str | None]
    if embeddings is not None:
        X = r.check_embeddings(load_matrix(Path(embeddings)), embeddings)
        tasks = [task] * len(X)
        decision = r.decide_logits(r.logits(X, tasks=tasks), offsets)
    elif texts:
        _texts(texts)
        tasks = [task] * len(texts)
        r.task_indices(tasks, len(texts))  # an unknown task fails before embedding
        decision = r.decide_logits(r.logits(r.embed(texts), tasks=tasks), offsets)
    else:
        r.load_encoder()  # a missing or other encoder fails before the prompts are read
        decision, tasks = _from_file(r, Path(str(prompts)), task, offsets)
    n = len(decision.index)
    table = routes_table(decision, r.names, scores, texts if texts else None)
    write_table(out_path, table)
    rule = "plain argmax" if plain else r.rule
    if budget is not None:
        rule = f"cost, budget {budget:g}: lambda {r.lambda_for_budget(budget):g} by the val cost curve"
    elif lam is not None:
        rule = f"cost, at lambda {lam:g}"
    with_task = sum(t is not None for t in tasks)
    if r.reads_tasks:
        rule += f"; {with_task} of {n} queries with a task, the others the nearest task's"
    elif with_task:
        rule += "; the tasks given do not change this router's routing (it has no task prior)"
    print(f"routed {n} queries with {r.path} ({rule}{chosen}); wrote {out_path}")
    if texts and len(texts) <= SHOWN_TEXTS:
        for text, name in zip(texts, decision.names):
            shown = " ".join(text.split())
            print(f"  {shown[:60] + ('...' if len(shown) > 60 else ''):<64} -> {name}")
        return 0
    counts = Counter(decision.names)
    for name, count in counts.most_common(5):
        print(f"  {name:<40} {count:>8}  {count / n:6.1%}")
    if len(counts) > 5:
        print(f"  ... {len(counts) - 5} more LLM(s)")
    return 0
