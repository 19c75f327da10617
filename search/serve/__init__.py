"""Serving a router over HTTP: ``python -m search serve RUN_DIR|ROUTER.pt``.

A routing API (``POST /v1/route``, ``GET /v1/models``, ``/healthz``, ``/metrics``) and, with a
backends file, a routing proxy for OpenAI-style clients (``POST /v1/chat/completions`` and
``/v1/completions`` with ``"model": "router"``). Pieces, one per module:

- ``settings``: ``ServeSettings``, every limit and switch, each checked where it is made.
- ``http_errors``: ``HTTPError``, the one-line JSON error body every 4xx and 5xx carries.
- ``counters``: the counters and histograms ``/metrics`` prints in Prometheus text format.
- ``batcher``: gathers concurrent requests into one batch for the encoder and the router.
- ``requests``: a route request's JSON read into a typed ``RouteJob`` (or a 4xx).
- ``backends``: the backends file (per LLM: base URL, model name, API key variable).
- ``proxy``: forwarding a routed chat or completion request, streamed or not.
- ``front``: before every endpoint: the bearer token, body limits, metrics, the hot endpoints.
- ``app``: the ASGI app: its endpoints.
- ``connections``: the guarded HTTP protocol (header timeout, connection bound).
- ``server``: binding the socket, starting the server, draining on SIGTERM.

Nothing below this package imports it; it needs the ``serve`` extra (uvicorn, httpx, orjson).
"""

INSTALL = 'pip install -e ".[serve]"'
