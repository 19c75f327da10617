"""The ASGI app of a served router: its endpoints, behind the front (``front``).

- ``POST /v1/route``: texts or embeddings in, each one's LLM out (``requests`` reads the body;
  ``batcher`` decides, exactly as ``Router.route`` would at the same offsets).
- ``GET /v1/models``: the LLMs (their costs, whether the proxy serves them), the router's card.
- ``GET /healthz`` (never behind the token, for load balancers), ``GET /metrics``.
- With backends: ``POST /v1/chat/completions`` and ``/v1/completions`` (``proxy``).

``front`` is the one dispatcher, in plain ASGI: every request's checks (the token, the body
limit, the metrics), the endpoints below by path and method, and the one error path (every
error one line of JSON, ``http_errors``; a bug's traceback goes to the server's log only).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import torch

from search.routing.router import Router
from search.serve.backends import Backend
from search.serve.batcher import Answer, Batcher, Query
from search.serve.counters import Metrics
from search.serve.front import ASGI, JSON, Front, Handler, Receive, Reply, Scope, read_json
from search.serve.http_errors import HTTPError
from search.serve.proxy import ENDPOINTS, ROUTER_MODEL, forward, model_choice, routing_text
from search.serve.requests import offsets_of, parse_route
from search.serve.settings import ServeSettings

log = logging.getLogger("search.serve")


def route_answer(router: Router, scores: bool, answer: Answer, max_len: int | None) -> dict[str, Any]:
    """The JSON of one route request's answer."""
    d = answer.decision
    chosen = d.chosen_scores.tolist()
    routes = []
    for i, (index, name) in enumerate(zip(d.index.tolist(), d.names)):
        item: dict[str, Any] = {"llm": name, "index": index, "predicted_correctness": chosen[i]}
        if answer.truncated is not None:
            item["truncated"] = answer.truncated[i]
        if scores:
            item["scores"] = dict(zip(router.names, d.scores[i].tolist()))
        routes.append(item)
    out: dict[str, Any] = {"routes": routes}
    if answer.truncated is not None and any(answer.truncated):
        out["truncated"] = {
            "count": sum(answer.truncated),
            "max_seq_length": max_len,
            "note": "prompts longer than the encoder's max sequence length are read up to it, as in training",
        }
    return out


def models_answer(router: Router, card: dict[str, Any], backends: dict[str, Backend]) -> dict[str, Any]:
    """``GET /v1/models``: the router as a model, each LLM (index, cost, proxied) and the card."""
    costs = router.costs
    data: list[dict[str, Any]] = [{"id": ROUTER_MODEL, "object": "model", "owned_by": "router-search"}]
    for j, name in enumerate(router.names):
        item: dict[str, Any] = {
            "id": name,
            "object": "model",
            "index": j,
            "cost": costs[j] if costs else None,
        }
        if backends:
            item["proxied"] = name in backends
        data.append(item)
    return {"object": "list", "data": data, "router": card}


def build_app(
    router: Router,
    settings: ServeSettings,
    card: dict[str, Any],
    backends: dict[str, Backend] | None = None,
) -> ASGI:
    """The app serving ``router`` (see the module doc); ``card``: what ``/v1/models`` says of it."""
    backends = backends or {}
    depth: list[Batcher] = []
    metrics = Metrics(router.names, lambda: depth[0].depth if depth else 0)
    batcher = Batcher(router, metrics, settings.max_batch, settings.batch_wait_ms / 1000, settings.queue_size)
    depth.append(batcher)
    allowed = torch.tensor([n in backends for n in router.names]) if backends else None
    clients: list[httpx.AsyncClient] = []
    max_len = router.identity.max_seq_length if router.identity is not None else None

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await batcher.start()
        if backends:
            clients.append(
                httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))
            )
        try:
            yield
        finally:
            for client in clients:
                await client.aclose()
            await batcher.stop()

    async def route(_: Scope, receive: Receive) -> Reply:
        job = parse_route(
            await read_json(receive, settings.max_body_bytes, settings.request_timeout_s),
            router,
            settings.max_prompts,
        )
        answer = await batcher.submit(
            Query(job.texts, job.X, job.offsets, tasks=job.tasks), settings.request_timeout_s
        )
        return Reply(200, orjson.dumps(route_answer(router, job.scores, answer, max_len)))

    async def healthz(_: Scope, __: Receive) -> Reply:
        return Reply(200, orjson.dumps({"status": "ok", "queue_depth": batcher.depth}))

    async def metrics_text(_: Scope, __: Receive) -> Reply:
        return Reply(200, metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")

    async def models(_: Scope, __: Receive) -> Reply:
        return Reply(200, orjson.dumps(models_answer(router, card, backends)), JSON)

    async def proxied(scope: Scope, receive: Receive) -> Reply:
        body = await read_json(receive, settings.max_body_bytes, settings.request_timeout_s)
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        path = scope["path"]
        pinned, budget = model_choice(body.get("model"), backends)
        if pinned is None:
            text = routing_text(body, path)
            offsets = offsets_of(router, budget=budget)
            answer = await batcher.submit(Query([text], None, offsets, allowed), settings.request_timeout_s)
            pinned = answer.decision.names[0]
        return await forward(
            clients[0],
            backends[pinned],
            path,
            body,
            settings.backend_timeout_s,
            settings.max_reply_bytes,
        )

    routes: dict[str, dict[str, Handler]] = {
        "/v1/route": {"POST": route},
        "/healthz": {"GET": healthz},
        "/metrics": {"GET": metrics_text},
        "/v1/models": {"GET": models},
    }
    if backends:
        routes.update({path: {"POST": proxied} for path in ENDPOINTS})
    return Front(routes, settings, metrics, lifespan)
