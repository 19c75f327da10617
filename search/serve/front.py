"""The front of a served router: what every request passes before an endpoint, in plain ASGI.

``Front`` checks the bearer token (in constant time; never logged), refuses a body larger than
the limit by its Content-Length, counts the request in the metrics, and answers the hot
endpoints (route, health, metrics) itself; the others go on to the app behind it (FastAPI).
(Measured on 2 cores: the framework's per-request machinery cost about 0.4 ms, more than the
router's own forward pass for a batch; see BENCHMARKS.md, Serving.) ``read_json`` reads a body
for either, bounded in size and time.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from search.serve.counters import Metrics
from search.serve.http_errors import HTTPError, error_body
from search.serve.settings import ServeSettings

log = logging.getLogger("search.serve")
OPEN_PATHS = ("/healthz",)  # answered without the token
JSON = "application/json"
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = Callable[[Receive], Awaitable[tuple[int, bytes, str]]]


async def respond(
    send: Send, status: int, body: bytes, kind: str = JSON, headers: dict[str, str] | None = None
) -> None:
    raw = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


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


class Front:
    """Pure ASGI middleware in front of every endpoint: the bearer token (compared in constant
    time, never logged), a body size limit by Content-Length, the request metrics, and the hot
    endpoints answered without the framework (``fast``: path -> (method, handler))."""

    def __init__(
        self,
        app: ASGI,
        settings: ServeSettings,
        metrics: Metrics,
        paths: set[str],
        fast: dict[str, tuple[str, Handler]],
    ) -> None:
        self.app = app
        self.token = f"Bearer {settings.token}".encode() if settings.token else None
        self.max_body = settings.max_body_bytes
        self.metrics = metrics
        self.paths = paths | set(fast)
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            refusal = self._refusal(scope, path)
            if refusal is not None:
                await respond(sent, refusal.status, refusal.body(), headers=refusal.headers)
            elif path in self.fast:
                await self._answer(scope, receive, sent, *self.fast[path])
            else:
                await self.app(scope, receive, sent)
        finally:
            self.metrics.request(path if path in self.paths else "other", status, time.perf_counter() - start)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, method: str, handler: Handler
    ) -> None:
        try:
            if scope["method"] != method:
                raise HTTPError(
                    405, f"{scope['method']} is not allowed on {scope['path']}", {"Allow": method}
                )
            status, body, kind = await handler(receive)
            await respond(send, status, body, kind)
        except HTTPError as err:
            await respond(send, err.status, err.body(), headers=err.headers)
        except Exception as exc:  # a bug: the traceback to the log, one line to the client
            log.error("request failed", exc_info=exc)
            await respond(send, 500, error_body(500, f"internal error ({type(exc).__name__})"))

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
