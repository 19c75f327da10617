"""New LLMs into a saved router from a few scored questions, and LLMs out: ``search onboard``
(which questions to score: ``suggest.py``).

:func:`onboard_router` reads a router (a file, or a run dir's recommended router) and scores
of new LLMs on some questions (any data source: records or tables, texts embedded with the
router's recorded encoder, or ``--embeddings``), fits one readout per new LLM over the router's
own predictions (``router_models/onboarded.py``), drops LLMs, and saves a router that
``route``, ``serve``, budgets and ``Router`` use like any other. Every known LLM's predicted
scores are the ones they were, checked to the bit before the file is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from router_models import BaseModel, save_router
from router_models.onboarded import base_logits, drop, fit_readout, onboard
from search.data import RouterData, load_data
from search.data.data_options import DataOptions
from search.data.encode import EncoderIdentity
from search.data.parts import data_source
from search.errors import UserError
from search.log import logger
from search.metrics import costs as C
from search.routing.router import Router

MIN_QUESTIONS = 8  # scored questions per new LLM, at least (32 or more recommended)
log = logger("onboard")


@dataclass(frozen=True)
class Onboarded:
    """What :func:`onboard_router` wrote: the router file, its LLMs, the added ones with the
    scored questions each was fitted on, the dropped ones, and the seconds the fit took."""

    path: Path
    names: list[str]
    added: dict[str, int]
    dropped: list[str]
    seconds: float
    lines: list[str] = field(default_factory=list)


def _scores_data(router: Router, scores: str | Sequence[str], options: DataOptions | None) -> RouterData:
    """The new LLMs' scores, embedded as the router's training data was."""
    options = options or DataOptions()
    spec = data_source([scores] if isinstance(scores, str) else list(scores))
    if options.embeddings is None and router.identity is not None:
        # texts are embedded by the router's own encoder (or the local copy given), as its
        # training texts were: with its template
        options = options.merged(
            encoder=options.encoder or router.encoder_spec,
            template=options.template or router.identity.template,
        )
    data = load_data(spec, options)
    if data.encoder is not None and router.identity is not None:
        diff = router.identity.mismatch(EncoderIdentity.from_dict(data.encoder, data.source))
        if diff is not None:
            raise UserError(
                f"--scores {data.source}: embedded by another encoder than {router.path}'s ({diff}); "
                "leave --encoder out (the router's own is used) or give embeddings its encoder made"
            )
    if data.encoder is not None and router.identity is None:
        raise UserError(
            f"--scores {data.source}: {router.path} was trained on embeddings of an encoder nobody "
            "recorded; give --embeddings made as its training data's were"
        )
    router.check_embeddings(data.X, f"--scores {data.source}")
    return data


def task_indices(router: Router, data: RouterData) -> torch.Tensor | None:
    """Each question's task as the router's index (-1: a task it does not know), or None."""
    if data.tasks is None or not data.task_names or not router.task_names:
        return None
    known = {n: i for i, n in enumerate(router.task_names)}
    return torch.tensor([known.get(data.task_names[int(t)], -1) for t in data.tasks], dtype=torch.long)


def _checked_new(router: Router, data: RouterData) -> list[int]:
    """The columns of ``data`` to onboard, each checked (one line for each way it cannot be)."""
    known = set(router.names)
    for name in data.model_names:
        if name in known:
            raise UserError(
                f"--scores {data.source}: LLM {name!r} is already one of the router's {len(known)} LLMs; "
                "onboard only new LLMs (or --drop it and onboard it again in a second step)"
            )
    for j, name in enumerate(data.model_names):
        seen = data.mask[:, j]
        n = int(seen.sum())
        if n < MIN_QUESTIONS:
            raise UserError(
                f"--scores {data.source}: LLM {name!r} has {n} scored question(s); onboarding needs at "
                f"least {MIN_QUESTIONS} (32 or more recommended; search onboard --suggest K picks them)"
            )
        values = data.Y[seen, j]
        if float(values.min()) == float(values.max()):
            raise UserError(
                f"--scores {data.source}: every score of LLM {name!r} is {float(values[0]):g}; nothing "
                "to learn which questions it answers well from (score it on harder and easier questions)"
            )
    return list(range(data.num_models))


def _new_costs(router: Router, data: RouterData) -> list[float] | None:
    if router.costs is None:
        if data.has_costs:
            log.info("note: the router knows no costs, so the new LLMs' costs are not used")
        return None
    if not data.has_costs or data.cost is None:
        raise UserError(
            f"--scores {data.source}: {router.path} routes by cost, so each new LLM needs its costs "
            "(cost columns beside its scores)"
        )
    out = []
    for j, name in enumerate(data.model_names):
        known = ~np.isnan(data.cost[:, j])
        if not known.any():
            raise UserError(f"--scores {data.source}: LLM {name!r} has no known cost")
        out.append(float(data.cost[known, j].mean()))
    return out


def caution(fitted: dict[str, Any]) -> float:
    """How much less a new LLM's predicted correctness counts when routing: one standard error
    of its level on the questions it was fitted on, ``sqrt(m (1 - m) / K)`` (0.11 at K = 16
    and a mean score of 0.6; 0.03 at K = 256). A new LLM is routed to by its lower confidence
    bound, not on the word of a handful of answers."""
    m, k = float(fitted["mean_score"]), max(int(fitted["questions"]), 1)
    return math.sqrt(max(m * (1 - m), 0.0) / k)


def _routing(
    router: Router,
    names: list[str],
    costs: list[float] | None,
    kept: list[int],
    logits: torch.Tensor | None,
    fitted: dict[str, Any],
) -> dict[str, Any]:
    """The saved routing carried over: the known LLMs' offsets as they were; a new LLM's its
    :func:`caution` (plus ``-lambda x cost`` when the router routes by a willingness to pay);
    dropped ones removed; the cost curve (what a budget is met by) recomputed on the scoring
    questions."""
    routing = dict(router.info.get("routing") or {})
    offsets = list(router.offsets)
    lam = routing.get("lambda")
    wary = {n: -caution(f) for n, f in fitted.items()}
    for j in range(len(offsets), len(names)):
        cost = -float(lam) * costs[j] if lam is not None and costs is not None else 0.0
        offsets.append(cost + wary[names[j]])
    offsets = [offsets[i] for i in kept]
    if fitted:
        routing["new_llms"] = (
            "routed to by their lower confidence bound: minus one standard error of their level"
        )
    anchor = routing.get("anchor_name")
    if anchor is not None and anchor not in [names[i] for i in kept]:
        offsets = [wary.get(names[i], 0.0) for i in kept]
        routing["rule"] = f"plain argmax (the margin's LLM {anchor} was dropped)"
        for key in ("anchor", "anchor_name", "margin"):
            routing.pop(key, None)
    elif anchor is not None:
        routing["anchor"] = [names[i] for i in kept].index(str(anchor))
    routing["offsets"] = offsets
    routing.pop("cost_curve", None)
    if costs is not None and logits is not None:
        mean = torch.tensor([costs[i] for i in kept], dtype=torch.float32)
        lambdas = C.lambda_grid(mean)
        q = logits.shape[0]
        _, spent = C.cost_curve(
            logits, torch.zeros(q, len(kept)), torch.ones(q, len(kept)), mean.expand(q, -1), mean, lambdas
        )
        routing["cost_curve"] = {
            "lambda": lambdas,
            "val_cost": spent.tolist(),
            "on": "the onboarding questions",
        }
    return routing


def onboard_router(
    router: str | Path,
    out: str | Path,
    *,
    scores: str | Sequence[str] | None = None,
    options: DataOptions | None = None,
    drop_names: Sequence[str] = (),
    encoder: str | None = None,
) -> Onboarded:
    """Add the LLMs of ``scores`` to ``router`` and drop ``drop_names``; save to ``out``.

    Raises:
        UserError: A router or data that cannot be read, an LLM the router has (or, to drop,
            has not), too few or constant scores, questions it cannot embed (one line each).
    """
    r = Router.load(router, encoder)
    out = Path(out)
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give the new router's file (.pt)")
    if scores is None and not drop_names:
        raise UserError("nothing to do: give --scores NEW (LLMs to add) or --drop NAME")
    start = time.perf_counter()
    model: BaseModel = r.base_model
    names = list(r.names)
    costs = r.costs
    added: dict[str, int] = {}
    fitted: dict[str, Any] = dict((r.info.get("metadata") or {}).get("onboarded") or {})
    logits = None
    X = None
    if scores is not None:
        data = _scores_data(r, scores, options)
        columns = _checked_new(r, data)
        new_costs = _new_costs(r, data)
        X = torch.from_numpy(np.ascontiguousarray(data.X, dtype=np.float32))
        tasks = task_indices(r, data)
        known = base_logits(model, X, tasks)
        readouts = []
        for j in columns:
            rows = torch.from_numpy(np.flatnonzero(data.mask[:, j]))
            y = torch.from_numpy(data.Y[:, j].astype(np.float64))[rows]
            readout = fit_readout(known[rows], y)
            readouts.append(readout)
            name = data.model_names[j]
            added[name] = readout.questions
            fitted[name] = {
                "questions": readout.questions,
                "ridge": readout.ridge,
                "mean_score": float(y.mean()),
            }
        with torch.no_grad():
            before = model(X, tasks)
            model = onboard(model, readouts)
            logits = model(X, tasks)
        # the promise, checked before anything is written: every LLM it had scores as before
        if not torch.equal(logits[:, : before.shape[1]], before):
            raise RuntimeError("onboarding changed a known LLM's predicted scores (a bug)")
        names += list(data.model_names)
        if costs is not None and new_costs is not None:
            costs = costs + new_costs
    kept = list(range(len(names)))
    for name in drop_names:
        if name not in names:
            raise UserError(f"--drop {name}: not one of the router's LLMs ({', '.join(names)})")
    if drop_names:
        positions = [names.index(n) for n in drop_names]
        kept = [i for i in kept if i not in positions]
        if not kept:
            raise UserError("--drop: dropping every LLM leaves no router")
        model = drop(model, positions)
        if logits is not None:
            logits = logits[:, kept]
        for n in drop_names:
            fitted.pop(n, None)
    routing = _routing(r, names, costs, kept, logits, fitted)
    metadata = {k: v for k, v in (r.info.get("metadata") or {}).items() if k not in ("onboarded", "dropped")}
    dropped = sorted(set((r.info.get("metadata") or {}).get("dropped") or []) | set(drop_names))
    train_config = ((r.info.get("config") or {}).get("pipeline_config") or {}).get("train_config")
    kept_names = [names[i] for i in kept]
    save_router(
        model,
        out,
        model_names=kept_names,
        train_config=train_config,
        routing=routing,
        encoder=r.info.get("encoder"),
        costs=[costs[i] for i in kept] if costs is not None else None,
        **{**metadata, "onboarded": fitted, "dropped": dropped, "onboarded_from": str(r.path)},
    )
    seconds = time.perf_counter() - start
    lines = [f"{name}: fitted on {k} scored questions" for name, k in added.items()]
    lines += [f"{name}: dropped" for name in drop_names]
    return Onboarded(out, kept_names, added, list(drop_names), seconds, lines)
