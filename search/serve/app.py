"""The ASGI app of a served router: its endpoints, the bearer-token gate and body limits.

- ``POST /v1/route``: texts or embeddings in, each one's LLM out (``requests`` reads the body;
  ``batcher`` decides, exactly as ``Router.route`` would at the same offsets).
- ``GET /v1/models``: the LLMs (their costs, whether the proxy serves them), the router's card.
- ``GET /healthz`` (never behind the token, for load balancers), ``GET /metrics``.
- With backends: ``POST /v1/chat/completions`` and ``/v1/completions`` (``proxy``).

Every error is one line of JSON (``errors``); a bug's traceback goes to the server's log only.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import torch
from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from search.router import Router
from search.serve.backends import Backend
from search.serve.batcher import Batcher, Query
from search.serve.errors import HTTPError, error_body
from search.serve.metrics import Metrics
from search.serve.proxy import ENDPOINTS, ROUTER_MODEL, forward, model_choice, routing_text
from search.serve.requests import offsets_of, parse_route
from search.serve.settings import ServeSettings

log = logging.getLogger("search.serve")
OPEN_PATHS = ("/healthz",)  # answered without the token
JSON = "application/json"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class Gate:
    """Pure ASGI middleware in front of every endpoint: the bearer token (compared in constant
    time, never logged), a body size limit by Content-Length, and the request metrics."""

    def __init__(self, app: ASGI, settings: ServeSettings, metrics: Metrics, paths: set[str]) -> None:
        self.app = app
        self.token = f"Bearer {settings.token}".encode() if settings.token else None
        self.max_body = settings.max_body_bytes
        self.metrics = metrics
        self.paths = paths

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in self.paths else "other"  # unknown paths share one label
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                await _send_error(sent, refusal)
                return
            await self.app(scope, receive, sent)
        finally:
            self.metrics.request(endpoint, status, time.perf_counter() - start)

    def _refusal(self, scope: Scope, path: str) -> HTTPError | None:
        headers = dict(scope["headers"])
        if self.token is not None and path not in OPEN_PATHS:
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.token):
                return HTTPError(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return HTTPError(400, "Content-Length is not a number")
            if int(length) > self.max_body:
                return HTTPError(413, f"the body has {int(length):,} bytes; at most {self.max_body:,}")
        return None


async def _send_error(send: Callable[[Message], Awaitable[None]], err: HTTPError) -> None:
    body = err.body()
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(obj, separators=(",", ":")), status, headers=headers, media_type=JSON)


async def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, read up to ``limit`` bytes (a chunked body too), whatever its
    Content-Type says (a client that sends JSON as a form is still understood).

    Raises:
        HTTPError: 413 past the limit; 400 for a body that is not JSON.
    """
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is larger than {limit:,} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise HTTPError(400, "the body is empty: send a JSON object")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise HTTPError(
            400, f"the body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise HTTPError(400, "the body nests too deeply") from None


def route_answer(router: Router, job_scores: bool, answer: Any, max_len: int | None) -> dict[str, Any]:
    """The JSON of one route request's answer."""
    d = answer.decision
    chosen = d.chosen_scores.tolist()
    routes = []
    for i, (index, name) in enumerate(zip(d.index.tolist(), d.names)):
        item: dict[str, Any] = {"llm": name, "index": index, "predicted_correctness": chosen[i]}
        if answer.truncated is not None:
            item["truncated"] = answer.truncated[i]
        if job_scores:
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


def build_app(
    router: Router,
    settings: ServeSettings,
    card: dict[str, Any],
    backends: dict[str, Backend] | None = None,
) -> ASGI:
    """The app serving ``router`` (see the module doc); ``card``: what ``/v1/models`` says of it."""
    backends = backends or {}
    batcher_box: dict[str, Batcher] = {}
    metrics = Metrics(router.names, lambda: batcher_box["b"].depth if "b" in batcher_box else 0)
    batcher = Batcher(router, metrics, settings.max_batch, settings.batch_wait_ms / 1000, settings.queue_size)
    batcher_box["b"] = batcher
    allowed = torch.tensor([n in backends for n in router.names]) if backends else None
    client_box: dict[str, httpx.AsyncClient] = {}
    max_len = router.identity.max_seq_length if router.identity is not None else None

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        if backends:
            client_box["c"] = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=256)
            )
        try:
            yield
        finally:
            if "c" in client_box:
                await client_box.pop("c").aclose()
            await batcher.stop()

    app = FastAPI(
        title="router-search: a served router",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(HTTPError)
    async def _our_error(_: Request, exc: HTTPError) -> Response:
        return Response(exc.body(), exc.status, headers=exc.headers, media_type=JSON)

    @app.exception_handler(StarletteHTTPException)
    async def _framework_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = {
            404: f"no endpoint {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
        }
        text = message.get(exc.status_code, str(exc.detail))
        return Response(
            error_body(exc.status_code, text),
            exc.status_code,
            headers=getattr(exc, "headers", None),
            media_type=JSON,
        )

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> Response:
        log.error("request failed", exc_info=exc)  # the traceback stays in the server's log
        return Response(error_body(500, f"internal error ({type(exc).__name__})"), 500, media_type=JSON)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok", "queue_depth": batcher.depth})

    @app.get("/metrics")
    async def metrics_text() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def models() -> Response:
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
        return _json({"object": "list", "data": data, "router": card})

    @app.post("/v1/route")
    async def route_endpoint(request: Request) -> Response:
        job = parse_route(await read_json(request, settings.max_body_bytes), router, settings.max_prompts)
        answer = await batcher.submit(Query(job.texts, job.X, job.offsets), settings.request_timeout_s)
        return _json(route_answer(router, job.scores, answer, max_len))

    async def proxied(request: Request) -> Response:
        body = await read_json(request, settings.max_body_bytes)
        if not isinstance(body, dict):
            raise HTTPError(400, "the body must be a JSON object")
        pinned, budget = model_choice(body.get("model"), backends)
        if pinned is None:
            if router.identity is None:
                raise HTTPError(
                    400, "this router routes embeddings only (no recorded encoder): it cannot route text"
                )
            text = routing_text(body, request.url.path)
            offsets = offsets_of(router, budget=budget)
            answer = await batcher.submit(Query([text], None, offsets, allowed), settings.request_timeout_s)
            pinned = answer.decision.names[0]
        return await forward(
            client_box["c"], backends[pinned], request.url.path, body, settings.backend_timeout_s
        )

    if backends:
        for path in ENDPOINTS:
            app.add_api_route(path, proxied, methods=["POST"])
    paths = {"/healthz", "/metrics", "/v1/models", "/v1/route", *(ENDPOINTS if backends else ())}
    gate = Gate(app, settings, metrics, paths)
    if not settings.cors_origins:
        return gate
    from starlette.middleware.cors import CORSMiddleware

    # outside the gate: a browser's preflight carries no token
    return CORSMiddleware(
        gate,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type"],
    )
