"""Which questions to score a new LLM on: ``search onboard --suggest K``.

:func:`suggest_questions` picks the K questions that tell most about a new LLM, from a run's
train questions or a pool (a prompts file or embeddings): spread evenly over how hard the known
LLMs find them (the axis an onboarding readout leans on most, ``router_models/onboarded.py``),
and within each stratum drawn, seeded, where the known LLMs disagree most.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from router_models.onboarded import base_logits
from search.data import load_data
from search.data.encode.template import Template
from search.data.prompts import check_file, read_prompts, read_rows
from search.data.tables import load_matrix
from search.errors import UserError
from search.results.records import read_run_info
from search.routing.onboard import task_indices
from search.routing.router import Router


@dataclass(frozen=True)
class Suggestion:
    """The questions to score a new LLM on: their ids (the source's id, else the row), texts
    (None where the source has none) and where they came from."""

    ids: list[Any]
    texts: list[str | None]
    source: str
    text_field: str = "question"  # the field the router's template reads a text from
    X: np.ndarray | None = None  # their embeddings [K, dim], as the router reads them
    identity: dict[str, Any] | None = None  # the encoder that made them (None: not recorded)


def pick_questions(logits: torch.Tensor, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct rows of ``logits [n, M]`` (a router's predictions for n candidates): one
    from each of ``k`` equal-count strata of the mean predicted logit (how hard the known LLMs
    find it), drawn, seeded, in proportion to the known LLMs' disagreement (the spread of their
    predicted correctness). The same logits, k and seed give the same rows.

    Raises:
        ValueError: ``k`` is not in [1, n].
    """
    n = logits.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    p = torch.sigmoid(logits.double())
    difficulty = p.mean(1)
    spread = p.std(1, unbiased=False) + 1e-6 if p.shape[1] > 1 else torch.ones(n, dtype=torch.float64)
    order = torch.argsort(difficulty, stable=True)
    gen = torch.Generator().manual_seed(int(seed))
    picked = []
    for stratum in torch.tensor_split(order, k):
        pick = int(torch.multinomial(spread[stratum], 1, generator=gen))
        picked.append(int(stratum[pick]))
    return np.sort(np.array(picked, dtype=np.int64))


def _pool(
    r: Router, router: str | Path, pool: str | None
) -> tuple[np.ndarray, list[Any], list[str | None], str, torch.Tensor | None]:
    """(embeddings, ids, texts, source, tasks) of the candidates: a run's train questions, a
    prompts file (embedded by the router's encoder; a record's ``id`` is its id, else its row)
    or an embeddings file (.npy, rows as ids)."""
    if pool is None:
        run_dir = Path(router)
        info = read_run_info(run_dir) if run_dir.is_dir() else None
        if info is None or not info.data_source:
            raise UserError(
                f"{router}: a router file does not carry its data; give --from POOL (a prompts file or "
                "embeddings), or the run dir, whose train questions are the pool"
            )
        data = load_data(info.data_source, info.options())
        rows = data.splits["train"]
        ids = [int(data.ids[i]) for i in rows] if data.ids is not None else [int(i) for i in rows]
        texts: list[str | None] = (
            [data.texts[i] for i in rows] if data.texts is not None else [None] * len(rows)
        )
        tasks = task_indices(r, data)
        return data.X[rows], ids, texts, f"{info.data_source} (train)", None if tasks is None else tasks[rows]
    path = Path(pool)
    if path.suffix in (".npy", ".pth", ".pt"):
        X = r.check_embeddings(load_matrix(path), f"--from {pool}")
        return X, list(range(len(X))), [None] * len(X), pool, None
    check_file(path)
    given: list[str | None] = []
    prompts = read_prompts(path, r.identity, given)
    records = read_rows(path)
    ids = [row.get("id", i) if isinstance(row, dict) else i for i, row in enumerate(records)]
    known = {n: i for i, n in enumerate(r.task_names)}
    tasks_t = torch.tensor([known.get(t, -1) if t else -1 for t in given], dtype=torch.long)
    return r.embed(prompts), ids, list(prompts), pool, tasks_t if bool((tasks_t >= 0).any()) else None


def suggest_questions(
    router: str | Path,
    k: int,
    *,
    pool: str | None = None,
    seed: int = 0,
    encoder: str | None = None,
) -> Suggestion:
    """The ``k`` questions to score a new LLM on (see :func:`pick_questions`), from a run dir's
    train questions or from ``pool`` (a prompts file or an embeddings file).

    Raises:
        UserError: No pool, fewer candidates than ``k``, or a pool the router cannot embed.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"--suggest must be a count >= 1, got {k!r}")
    r = Router.load(router, encoder)
    X, ids, texts, source, tasks = _pool(r, router, pool)
    if len(X) < k:
        raise UserError(
            f"--suggest {k}: the pool ({source}) holds {len(X)} questions; ask for at most that many"
        )
    logits = base_logits(r.base_model, torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)), tasks)
    rows = pick_questions(logits, k, seed)
    field = "question"
    if r.identity is not None:
        template = Template(r.identity.template)
        if len(template.fields) == 1 and template.spec == f"{{{template.fields[0]}}}":
            field = template.fields[0]  # scored and fed back, the texts render as they did
    identity = r.identity.to_dict() if r.identity is not None else None
    return Suggestion([ids[i] for i in rows], [texts[i] for i in rows], source, field, X[rows], identity)
