"""The one dispatcher of a served router, in plain ASGI: what every request passes, which
endpoint answers it, and the one error path.

``Front`` answers CORS preflights (when origins are allowed), checks the bearer token (in
constant time; never logged), refuses a body larger than the limit by its Content-Length,
counts the request in the metrics, finds the endpoint by path and method (404 and 405
otherwise) and sends its :class:`Reply`, whole or streamed. Every error, from a check, an
endpoint or a bug, becomes one line of JSON here (a bug's traceback goes to the log only).
It also runs the app's startup and shutdown (the ASGI lifespan). (Measured on 2 cores: a web
framework's per-request machinery cost about 0.4 ms, more than the router's own forward pass
for a batch; see BENCHMARKS.md, Serving.) ``read_json`` reads a body, bounded in size and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from search.serve.counters import Metrics
from search.serve.http_errors import HTTPError, error_body
from search.serve.settings import ServeSettings

log = logging.getLogger("search.serve")
OPEN_PATHS = ("/healthz",)  # answered without the token
JSON = "application/json"
CORS_METHODS = "GET, POST"
CORS_HEADERS = "authorization, content-type"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Reply:
    """An endpoint's answer: ``body`` whole (bytes) or as it arrives (an async iterator of
    bytes, sent chunk by chunk and stopped when the client leaves)."""

    status: int
    body: bytes | AsyncIterator[bytes]
    kind: str | None = JSON
    headers: dict[str, str] = field(default_factory=dict)


# An endpoint: given the request's scope and its body's receive, its reply.
Handler = Callable[[Scope, Receive], Awaitable[Reply]]
Lifespan = Callable[[], contextlib.AbstractAsyncContextManager[None]]


async def read_json(receive: Receive, limit: int, timeout_s: float) -> Any:
    """The request's JSON body, read up to ``limit`` bytes (a chunked body too) within
    ``timeout_s``, whatever its Content-Type says (JSON sent as a form is still understood).

    Raises:
        HTTPError: 413 past the limit; 408 when the body is slower than the timeout; 400 for a
            body that is not JSON.
    """
    try:
        raw = await asyncio.wait_for(_read_body(receive, limit), timeout_s)
    except asyncio.TimeoutError:
        raise HTTPError(408, f"the body did not arrive within {timeout_s:g} s") from None
    if not raw:
        raise HTTPError(400, "the body is empty: send a JSON object")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "the body is not UTF-8 text") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise HTTPError(400, "the body nests too deeply (more than 1024 levels)") from None
        raise HTTPError(400, f"the body is not valid JSON ({exc})") from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPError(400, "the client went away before the body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise HTTPError(413, f"the body is larger than {limit:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def error_reply(err: HTTPError) -> Reply:
    return Reply(err.status, err.body(), JSON, dict(err.headers or {}))


async def send_reply(send: Send, receive: Receive, reply: Reply, extra: dict[str, str]) -> None:
    """Send ``reply`` (with ``extra`` headers). A streamed body is sent as it arrives and
    stopped (its iterator closed, so its source is closed too) when the client leaves."""
    headers = {**reply.headers, **extra}
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if reply.kind is not None:
        raw.append((b"content-type", reply.kind.encode()))
    if isinstance(reply.body, bytes):
        raw.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": raw})
        await send({"type": "http.response.body", "body": reply.body})
        return
    body = reply.body
    await send({"type": "http.response.start", "status": reply.status, "headers": raw})

    async def stream() -> None:
        async for chunk in body:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def left() -> None:  # the client went away: nothing more is read for it
        while (await receive())["type"] != "http.disconnect":
            pass

    streaming, watching = asyncio.ensure_future(stream()), asyncio.ensure_future(left())
    try:
        await asyncio.wait((streaming, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (streaming, watching):
            task.cancel()
        await asyncio.gather(streaming, watching, return_exceptions=True)
        closing = getattr(body, "aclose", None)
        if closing is not None:
            await closing()
    if streaming.done() and not streaming.cancelled() and streaming.exception() is not None:
        raise streaming.exception()  # type: ignore[misc]


class Front:
    """The ASGI app: every request's checks, the endpoints by path and method, one error path.

    Args:
        routes: path -> {method: handler}.
        settings: The token, the body limit and the CORS origins.
        metrics: Counts every request by endpoint (``other`` for unknown paths) and status.
        lifespan: Entered at the server's startup, left at its shutdown.
    """

    def __init__(
        self,
        routes: dict[str, dict[str, Handler]],
        settings: ServeSettings,
        metrics: Metrics,
        lifespan: Lifespan | None = None,
    ) -> None:
        self.routes = routes
        self.token = f"Bearer {settings.token}".encode() if settings.token else None
        self.max_body = settings.max_body_bytes
        self.origins = set(settings.cors_origins)
        self.metrics = metrics
        self.lifespan = lifespan

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        start = time.perf_counter()
        path = scope["path"]
        status = 500
        try:
            reply, extra = await self._reply(scope, receive)
            status = reply.status
            await send_reply(send, receive, reply, extra)
        except Exception as exc:  # a failure while sending: the start may be out already
            log.error("request failed", exc_info=exc)
        finally:
            endpoint = path if path in self.routes else "other"
            self.metrics.request(endpoint, status, time.perf_counter() - start)

    async def _reply(self, scope: Scope, receive: Receive) -> tuple[Reply, dict[str, str]]:
        """The reply to one request, errors included, and the CORS headers it carries."""
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        allowed = bool(origin) and (origin in self.origins or "*" in self.origins)
        cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if allowed else {}
        if self.origins and scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            return self._preflight(allowed, headers), cors  # before the token: it carries none
        try:
            refusal = self._refusal(scope, headers)
            if refusal is not None:
                raise refusal
            methods = self.routes.get(scope["path"])
            if methods is None:
                raise HTTPError(404, f"no endpoint {scope['path']}")
            handler = methods.get(scope["method"])
            if handler is None:
                allow = ", ".join(methods)
                raise HTTPError(405, f"{scope['method']} is not allowed on {scope['path']}", {"Allow": allow})
            return await handler(scope, receive), cors
        except HTTPError as err:
            return error_reply(err), cors
        except Exception as exc:  # a bug: the traceback to the log, one line to the client
            log.error("request failed", exc_info=exc)
            return Reply(500, error_body(500, f"internal error ({type(exc).__name__})")), cors

    def _preflight(self, allowed: bool, headers: dict[bytes, bytes]) -> Reply:
        method = headers.get(b"access-control-request-method", b"").decode("latin-1")
        if not allowed or method not in CORS_METHODS.split(", "):
            return Reply(400, error_body(400, "a CORS preflight this server does not allow"))
        return Reply(
            200,
            b"OK",
            "text/plain; charset=utf-8",
            {
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> HTTPError | None:
        if self.token is not None and scope["path"] not in OPEN_PATHS:
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

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """The server's startup and shutdown: ``lifespan`` entered and left, failures said."""
        stack = contextlib.AsyncExitStack()
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.lifespan is not None:
                        await stack.enter_async_context(self.lifespan())
                except Exception as exc:
                    log.error("startup failed", exc_info=exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await stack.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
