"""The routing proxy: an OpenAI-style request routed on its last user message and forwarded.

``POST /v1/chat/completions`` or ``/v1/completions`` with ``"model": "router"`` (at the
router's saved offsets), ``"router:<budget>"`` (meeting a mean cost per query), or one of the
backends' LLM names (sent there, no routing). The body goes to the chosen backend unchanged but
for ``model`` (the backend's model name); its answer comes back as it arrives, streamed
(server-sent events) or not, with ``x-router-llm`` naming the LLM that answered (the body's own
``model`` field is the backend's). A backend that cannot be reached, fails (5xx) or refuses its
key gives 502, one that does not answer in time 504, each naming it; a backend's 4xx about the
request itself is passed on as it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from starlette.responses import Response, StreamingResponse

from search.serve.backends import Backend
from search.serve.errors import HTTPError, error_body

ROUTER_MODEL = "router"
LLM_HEADER = "x-router-llm"
ENDPOINTS = {"/v1/chat/completions": "chat/completions", "/v1/completions": "completions"}
_PASSED_HEADERS = ("content-type", "cache-control")
_DETAIL = 200  # characters of a backend's own error message shown


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


def _backend_message(raw: bytes) -> str:
    try:
        error = json.loads(raw).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return f": {' '.join(str(message).split())[:_DETAIL]}" if message else ""


def _refused(backend: Backend, status: int, raw: bytes, headers: dict[str, str]) -> Response:
    """A backend's error answer: ours (502) when it is the backend's fault, else passed on."""
    if status >= 500 or status in (401, 403, 407):
        what = "refused its API key" if status in (401, 403, 407) else "failed"
        err = HTTPError(502, f"backend {backend.shown} {what} ({status}){_backend_message(raw)}")
        return Response(err.body(), 502, headers=headers, media_type="application/json")
    return Response(raw, status, headers=headers, media_type="application/json")


async def forward(
    client: httpx.AsyncClient, backend: Backend, path: str, body: dict[str, Any], timeout_s: float
) -> Response:
    """Send ``body`` (its ``model`` set to the backend's) to ``backend`` and answer with what it
    answers; streamed when the request asks for a stream.

    Raises:
        HTTPError: 502 or 504 naming the backend when it gives no answer (see the module doc).
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
    passed = {**{k: v for k, v in reply.headers.items() if k.lower() in _PASSED_HEADERS}, **ours}
    if not body.get("stream") or reply.status_code != 200:
        try:
            raw = await reply.aread()
        except httpx.HTTPError as exc:
            raise _failure(backend, exc, timeout_s) from None
        finally:
            await reply.aclose()
        if reply.status_code >= 400:
            return _refused(backend, reply.status_code, raw, ours)
        return Response(raw, reply.status_code, headers=passed)
    return StreamingResponse(_relay(reply, backend, timeout_s), 200, headers=passed)


async def _relay(reply: httpx.Response, backend: Backend, timeout_s: float) -> AsyncIterator[bytes]:
    """The backend's stream as it arrives; a failure mid-stream ends it with an error event (the
    status was sent already)."""
    try:
        async for chunk in reply.aiter_bytes():  # decoded: no content-encoding is passed on
            yield chunk
    except httpx.HTTPError as exc:
        err = _failure(backend, exc, timeout_s)
        yield b"data: " + error_body(err.status, err.message).rstrip(b"\n") + b"\n\n"
    finally:
        await reply.aclose()
