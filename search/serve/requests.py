"""A route request's JSON read into a typed ``RouteJob``, or a 4xx saying what is wrong.

``POST /v1/route`` takes exactly one of ``prompt`` (a string), ``prompts`` (a list of them),
``embedding`` (a list of numbers) or ``embeddings`` (a list of such lists), and optionally
``budget`` (a mean cost per query to meet, by the router's val cost curve) or ``lambda`` (a
willingness to pay), ``plain`` (ignore the router's saved offsets) and ``scores`` (every LLM's
predicted correctness in the answer). ``task`` (a name, for every item) or ``tasks`` (one name
or null per item) gives each query's task to a router with a task prior (an item without one
takes the task nearest it). Messages name the field and what is valid; they never carry a file
path (the router's own messages may, so none of them is passed on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.errors import UserError
from search.routing.router import Router
from search.serve.http_errors import HTTPError

INPUTS = ("prompt", "prompts", "embedding", "embeddings")
FIELDS = (*INPUTS, "budget", "lambda", "plain", "scores", "task", "tasks")


@dataclass
class RouteJob:
    """What to route and how: texts or embeddings ``[n, dim]`` at ``offsets``."""

    texts: list[str] | None
    X: np.ndarray | None
    offsets: list[float]
    scores: bool
    tasks: list[str | None] | None = None


def bad(message: str, status: int = 400) -> HTTPError:
    return HTTPError(status, message)


def _number(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise bad(f"{name} must be a number >= 0, got {_show(value)}")
    return float(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def offsets_of(router: Router, budget: Any = None, lam: Any = None, plain: bool = False) -> list[float]:
    """The offsets of a decision at ``budget`` or ``lam`` (or the saved ones, or zeros).

    Raises:
        HTTPError: 400 for a bad value, both given, or a router that cannot honour them.
    """
    if budget is not None and lam is not None:
        raise bad("give budget or lambda, not both")
    if (budget is not None or lam is not None) and plain:
        raise bad("plain routes at zero offsets: give it without budget or lambda")
    if budget is not None:
        budget = _number(budget, "budget")
    if lam is not None:
        lam = _number(lam, "lambda")
    if (budget is not None or lam is not None) and router.costs is None:
        what = "budget" if budget is not None else "lambda"
        raise bad(f"this router knows no LLM costs (its data had none), so {what} cannot be set")
    try:
        return router.offsets_for(plain=plain, lam=lam, budget=budget)
    except UserError:  # the router's line names its file: say it here without the path
        raise bad(
            "this router records no val cost curve (it was saved before routers kept one): give lambda, "
            "not budget"
        ) from None


def _texts(value: Any, name: str, max_prompts: int) -> list[str]:
    items = [value] if name == "prompt" else value
    if name == "prompts" and (not isinstance(value, list) or not value):
        raise bad("prompts must be a non-empty list of strings")
    if len(items) > max_prompts:
        raise bad(f"{len(items)} prompts in one request; at most {max_prompts}", 413)
    for i, text in enumerate(items):
        where = name if name == "prompt" else f"prompts[{i}]"
        if not isinstance(text, str):
            raise bad(f"{where} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise bad(f"{where} is empty")
    return list(items)


def _embeddings(value: Any, name: str, dim: int, max_prompts: int) -> np.ndarray:
    rows = [value] if name == "embedding" else value
    if not isinstance(rows, list) or not rows:
        raise bad(f"{name} must be a non-empty list{' of lists' if name == 'embeddings' else ''} of numbers")
    if len(rows) > max_prompts:
        raise bad(f"{len(rows)} embeddings in one request; at most {max_prompts}", 413)
    for i, row in enumerate(rows):
        where = name if name == "embedding" else f"embeddings[{i}]"
        if not isinstance(row, list):
            raise bad(f"{where} must be a list of numbers, got {type(row).__name__}")
        if len(row) != dim:
            raise bad(f"{where} has {len(row)} values; this router reads {dim}-d embeddings")
    if not {type(v) for row in rows for v in row} <= {int, float}:  # no strings, booleans, nulls
        raise bad(f"{name} must hold numbers only")
    try:
        X = np.array(rows, dtype=np.float32)
    except OverflowError:
        raise bad(f"{name} holds a value that is not finite (too large)") from None
    if not np.isfinite(X).all():
        raise bad(f"{name} holds a value that is not finite (NaN or infinity)")
    return X


def _tasks(body: dict[str, Any], router: Router, n: int) -> list[str | None] | None:
    """Each item's task from ``task`` or ``tasks``, checked against the router's tasks."""
    if "task" in body and "tasks" in body:
        raise bad("give task or tasks, not both")
    if "task" in body:
        if not isinstance(body["task"], str):
            raise bad(f"task must be a string, got {_show(body['task'])}")
        tasks: list[Any] = [body["task"]] * n
    elif "tasks" in body:
        tasks = body["tasks"]
        if not isinstance(tasks, list) or len(tasks) != n:
            raise bad(f"tasks must be a list of {n} task names or nulls, one per item")
        if not all(t is None or isinstance(t, str) for t in tasks):
            raise bad("tasks must hold strings or nulls only")
    else:
        return None
    known = set(router.task_names)
    unknown = next((t for t in tasks if t is not None and t not in known), None)
    if unknown is not None:
        valid = ", ".join(router.task_names) if known else "none: its data had no tasks"
        raise bad(f"unknown task {_show(unknown)}; this router's tasks: {valid}")
    return list(tasks)


def parse_route(body: Any, router: Router, max_prompts: int) -> RouteJob:
    """The route request ``body`` (parsed JSON) as a job for ``router``.

    Raises:
        HTTPError: 400 (or 413 for too many items) naming the field and what is valid.
    """
    if not isinstance(body, dict):
        raise bad(f"the body must be a JSON object with one of {', '.join(INPUTS)}")
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise bad(f"unknown field {unknown[0]!r}; fields: {', '.join(FIELDS)}")
    given = [k for k in INPUTS if k in body]
    if len(given) != 1:
        got = f"; got {' and '.join(given)}" if given else ""
        raise bad(f"give exactly one of {', '.join(INPUTS)}{got}")
    for flag in ("plain", "scores"):
        if flag in body and not isinstance(body[flag], bool):
            raise bad(f"{flag} must be true or false, got {_show(body[flag])}")
    name = given[0]
    offsets = offsets_of(router, body.get("budget"), body.get("lambda"), bool(body.get("plain", False)))
    scores = bool(body.get("scores", False))
    if name in ("prompt", "prompts"):
        if router.identity is None:
            raise bad(
                "this router was trained on embeddings of an encoder nobody recorded, so it routes "
                "embeddings only: send embedding or embeddings"
            )
        texts = _texts(body[name], name, max_prompts)
        return RouteJob(texts, None, offsets, scores, _tasks(body, router, len(texts)))
    X = _embeddings(body[name], name, router.embedding_dim, max_prompts)
    return RouteJob(None, X, offsets, scores, _tasks(body, router, len(X)))
