"""The routing proxy: an OpenAI-style request routed on its last user message and forwarded.

``POST /v1/chat/completions`` or ``/v1/completions`` with ``"model": "router"`` (at the
router's saved offsets), ``"router:<budget>"`` (meeting a mean cost per query), or one of the
backends' LLM names (sent there, no routing). The body goes to the chosen backend unchanged but
for ``model`` (the backend's model name); its answer comes back as it arrives, streamed
(server-sent events) or not, with ``x-router-llm`` naming the LLM that answered (the body's own
``model`` field is the backend's). Answers pass through as they arrive, compressed or not, one
chunk at a time: the proxy's memory does not grow with an answer's length, a non-streamed answer
is cut at ``--max-reply-bytes``, and a client that leaves stops the reading. A backend that
cannot be reached, fails (5xx), refuses its key or answers anything else the proxy does not
relay (a redirect) gives 502, one that does not answer in time 504, each naming it by host
(never a key, a user or a password, which are also redacted from the backend's own words); a
backend's 4xx about the request itself is passed on as it is.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from search.redact import redact
from search.serve.backends import Backend
from search.serve.front import JSON, Reply
from search.serve.http_errors import HTTPError, error_body

log = logging.getLogger("search.serve")

ROUTER_MODEL = "router"
LLM_HEADER = "x-router-llm"
ENDPOINTS = {"/v1/chat/completions": "chat/completions", "/v1/completions": "completions"}
# content-encoding too: a compressed answer is passed on as it came, never inflated here
_PASSED_HEADERS = ("content-type", "cache-control", "content-encoding")
_DETAIL = 200  # characters of a backend's own error message shown
ERROR_BYTES = 64 * 1024  # what is read of an answer the proxy does not relay, to name the error
MAX_REPLY_BYTES = 64 * 1024 * 1024  # the longest non-streamed answer relayed (--max-reply-bytes)
REFUSED_KEY = (401, 403, 407)


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones, joined
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if texts and all(isinstance(t, str) for t in texts):
            return "\n".join(str(t) for t in texts)
    raise HTTPError(400, f"{where}: give a string or a list of text parts")


def routing_text(body: dict[str, Any], path: str) -> str:
    """What the request is routed on: the last user message (chat) or the prompt (completions).

    Raises:
        HTTPError: 400 when there is none, or it is empty.
    """
    if path == "/v1/chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HTTPError(400, "messages must be a non-empty list of {role, content} objects")
        users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise HTTPError(400, "messages holds no user message to route on")
        text = _text_of(messages[users[-1]].get("content"), f"messages[{users[-1]}].content")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise HTTPError(400, "prompt must be a string (or a list of one string) to route on")
        text = prompt
    if not text.strip():
        raise HTTPError(400, "the text to route on is empty")
    return text


def model_choice(model: Any, backends: dict[str, Backend]) -> tuple[str | None, float | None]:
    """``(pinned LLM or None, budget or None)`` for the request's ``model``.

    Raises:
        HTTPError: 400 for a bad budget; 404 for a model that is neither the router nor a backend.
    """
    if model == ROUTER_MODEL:
        return None, None
    if isinstance(model, str) and model.startswith(ROUTER_MODEL + ":"):
        raw = model[len(ROUTER_MODEL) + 1 :]
        try:
            budget = float(raw)
        except ValueError:
            budget = float("nan")
        if not budget >= 0 or budget == float("inf"):
            raise HTTPError(400, f"model {model!r}: router:<budget> takes a number >= 0, got {raw!r}")
        return None, budget
    if isinstance(model, str) and model in backends:
        return model, None
    shown = json.dumps(model)[:60]
    served = ", ".join([ROUTER_MODEL, f"{ROUTER_MODEL}:<budget>", *list(backends)[:8]])
    raise HTTPError(404, f"model {shown} is not served here; models: {served}")


def _failure(backend: Backend, exc: httpx.HTTPError, timeout_s: float) -> HTTPError:
    if isinstance(exc, httpx.TimeoutException):
        return HTTPError(504, f"backend {backend.shown} did not answer within {timeout_s:g} s")
    if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
        kind = "cannot be reached" if isinstance(exc, httpx.ConnectError) else "closed the connection"
        return HTTPError(502, f"backend {backend.shown} {kind}")
    return HTTPError(502, f"backend {backend.shown} failed ({type(exc).__name__})")


def _inflated(raw: bytes, encoding: str) -> bytes:
    """A capped error body as text: gzip or deflate inflated to at most ``ERROR_BYTES`` (a
    small body that inflates to gigabytes stays small here); another encoding gives nothing."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return raw[:ERROR_BYTES]
    if encoding not in ("gzip", "x-gzip", "deflate"):
        return b""
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(raw, ERROR_BYTES)  # gzip or zlib
    except zlib.error:
        return b""


def _backend_message(raw: bytes, backend: Backend) -> str:
    """What a backend's error body says, in one short line with its secrets redacted."""
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    if not message:
        return ""
    return f": {redact(' '.join(str(message).split()), backend.secrets)[:_DETAIL]}"


def relayed(status: int) -> bool:
    """Whether a backend's answer of ``status`` goes to the client as it is: a success, or the
    backend's objection to the request itself (a 4xx but for its refusing our key). Every other
    answer (a redirect, a 1xx, a 5xx, a refused key) becomes our 502."""
    return 200 <= status < 300 or (400 <= status < 500 and status not in REFUSED_KEY)


async def forward(
    client: httpx.AsyncClient,
    backend: Backend,
    path: str,
    body: dict[str, Any],
    timeout_s: float,
    max_reply_bytes: int = MAX_REPLY_BYTES,
) -> Reply:
    """Send ``body`` (its ``model`` set to the backend's) to ``backend`` and relay its answer as
    it arrives, streamed or not, as the backend encoded it (a compressed body is passed on
    compressed, never inflated here); the proxy holds one chunk at a time, stops reading when
    the client is gone, and ends a non-streamed answer longer than ``max_reply_bytes``.

    Raises:
        HTTPError: 502 or 504 naming the backend when it gives no answer to relay (see the
            module doc), its own words redacted.
    """
    timeout_s = backend.timeout_s or timeout_s
    sent = {**body, "model": backend.model}
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if backend.api_key:
        headers["authorization"] = f"Bearer {backend.api_key}"
    ours = {LLM_HEADER: backend.llm}
    request = client.build_request(
        "POST",
        backend.url(ENDPOINTS[path]),
        content=json.dumps(sent).encode(),
        headers=headers,
        timeout=httpx.Timeout(timeout_s),
    )
    try:
        reply = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise _failure(backend, exc, timeout_s) from None
    status = reply.status_code
    if not relayed(status):
        try:  # what it says, capped: never the whole of a body the backend chose the size of
            raw = b""
            async for chunk in reply.aiter_raw():
                raw += chunk
                if len(raw) >= ERROR_BYTES:
                    break
        except httpx.HTTPError:
            raw = b""
        finally:
            await reply.aclose()
        said = _backend_message(
            _inflated(raw[:ERROR_BYTES], reply.headers.get("content-encoding", "")), backend
        )
        what = {401: "refused its API key", 403: "refused its API key", 407: "refused its API key"}.get(
            status, "failed" if status >= 500 else "answered what the proxy does not relay"
        )
        err = HTTPError(502, f"backend {backend.shown} {what} ({status}){said}")
        return Reply(502, err.body(), JSON, ours)
    passed = {**{k: v for k, v in reply.headers.items() if k.lower() in _PASSED_HEADERS}, **ours}
    streamed = bool(body.get("stream")) and status == 200
    limit = None if streamed else max_reply_bytes
    # the backend's own content type is among the passed headers
    return Reply(status, _relay(reply, backend, timeout_s, limit, streamed), None, passed)


async def _relay(
    reply: httpx.Response, backend: Backend, timeout_s: float, limit: int | None, streamed: bool
) -> AsyncIterator[bytes]:
    """The backend's answer as it arrives, as it was encoded. A failure mid-way ends a stream
    with an error event (the status was sent already) and cuts a plain answer short; so does a
    plain answer past ``limit`` bytes. The backend's connection is closed however it ends: the
    client leaving stops the iteration, and with it the reading."""
    sent = 0
    try:
        async for chunk in reply.aiter_raw():
            sent += len(chunk)
            if limit is not None and sent > limit:
                log.warning("backend %s: answer cut at %d bytes (--max-reply-bytes)", backend.shown, limit)
                return
            yield chunk
    except httpx.HTTPError as exc:
        err = _failure(backend, exc, timeout_s)
        if streamed:
            yield b"data: " + error_body(err.status, err.message).rstrip(b"\n") + b"\n\n"
    finally:
        await reply.aclose()
