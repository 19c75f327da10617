"""``search route``: send new queries to LLMs with a saved router.

The decision is the one the routing table measured: the router's predicted correctness plus the
offsets saved with it (the switching margin tuned on val, or ``-lambda x cost`` for a budget),
argmax over LLMs. One row per query, in the order of the embeddings file. Given a run dir, the
router the run recommends (chosen on val) routes.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from router_models import load_router, route
from search.data.tables import load_matrix
from search.errors import UserError
from search.paths import check_file_target
from search.results.export import BEST_ROUTER, ROUTING_TABLE, routers_of, write_table
from search.results.rundir import read_object
from search.trial.train import predict

FORMATS = (".csv", ".parquet")
SCORE_PREFIX = "p|"  # a per-LLM score column: p|<llm>, as wide tables name cost columns <llm>|...


def routes_table(
    logits: torch.Tensor, offsets: list[float], names: list[str], scores: bool = False
) -> pa.Table:
    """One row per query: the chosen LLM (name and index) and its predicted correctness; with
    ``scores``, every LLM's predicted correctness too."""
    p = torch.sigmoid(logits.float())
    choice = route(logits, offsets)
    columns: dict[str, Any] = {
        "query": np.arange(len(choice)),
        "llm": [names[i] for i in choice.tolist()],
        "llm_index": choice.numpy(),
        "predicted_correctness": p.gather(1, choice[:, None])[:, 0].numpy(),
    }
    if scores:
        columns.update({f"{SCORE_PREFIX}{name}": p[:, j].numpy() for j, name in enumerate(names)})
    return pa.table(columns)


def recommended_router(run_dir: Path) -> tuple[Path, str]:
    """The router file a run recommends (chosen on val) and its name; the best trial's when the
    run recommended none."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir}: no config.json; give a router file (.pt) or a finished run dir")
    routers = dict(routers_of(run_dir, read_object(config_path, "a run's config.json")))
    if not routers:
        raise UserError(f"{run_dir}: holds no router ({BEST_ROUTER} is missing)")
    table = run_dir / ROUTING_TABLE
    named = read_object(table, "a run's routing table").get("recommended") if table.is_file() else None
    if named is not None and (not isinstance(named, str) or named not in routers):
        raise UserError(
            f"{table}: recommends {named!r}, which is not one of the run's routers ({', '.join(routers)})"
        )
    name = named if named is not None else next(iter(routers))
    return routers[name], name


def run_route(router: str, embeddings: str, out: str, plain: bool = False, scores: bool = False) -> int:
    out_path = Path(out)
    if out_path.suffix not in FORMATS:
        raise UserError(f"--out {out}: give a {' or '.join(FORMATS)} file")
    check_file_target(out_path, "--out")
    chosen = ""
    if Path(router).is_dir():
        path, name = recommended_router(Path(router))
        router, chosen = str(path), f"; the run's recommended router, {name}"
    model, info = load_router(router)
    X = load_matrix(Path(embeddings))
    if X.shape[1] != info["embedding_dim"]:
        raise UserError(
            f"{embeddings}: {X.shape[1]}-d embeddings, but {router} reads {info['embedding_dim']}-d ones "
            "(embed the queries with the model its training data used)"
        )
    num_models = int(info["num_models"])
    names = list(info["model_names"] or [str(j) for j in range(num_models)])
    offsets = [0.0] * num_models if plain else list(info["offsets"])
    with torch.no_grad():
        logits = predict(model, torch.from_numpy(X))
    table = routes_table(logits, offsets, names, scores)
    write_table(out_path, table)
    rule = "plain argmax" if plain else info["routing"].get("rule", "plain argmax (no offsets saved)")
    print(f"routed {len(X)} queries with {router} ({rule}{chosen}); wrote {out_path}")
    counts = Counter(table.column("llm").to_pylist())
    for name, n in counts.most_common(5):
        print(f"  {name:<40} {n:>8}  {n / len(X):6.1%}")
    if len(counts) > 5:
        print(f"  ... {len(counts) - 5} more LLM(s)")
    return 0
