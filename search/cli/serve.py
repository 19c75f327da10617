"""``search serve``: a saved router behind HTTP (the routing API, and with ``--backends`` a
routing proxy for OpenAI-style clients). The command parses its flags into ``ServeSettings``
and calls ``search.serve.server.serve``, which does the work."""

from __future__ import annotations

import argparse
import os

from search.serve.settings import TOKEN_ENV, ServeSettings

DEFAULTS = ServeSettings()


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    sv = sub.add_parser("serve", help="serve a saved router over HTTP (routing API and proxy)")
    sv.add_argument("router", help="a saved router (.pt) or a run dir (its recommended router)")
    sv.add_argument("--host", default=DEFAULTS.host, help="address to bind (default 127.0.0.1)")
    sv.add_argument(
        "--port", type=int, default=DEFAULTS.port, help="TCP port (default 8000; 0: any free one)"
    )
    sv.add_argument("--encoder", help="a local copy of the router's encoder (checked against its identity)")
    sv.add_argument("--backends", help="backends.yaml: per LLM, its OpenAI-compatible base URL and model")
    sv.add_argument("--token-file", help=f"file holding the bearer token (else ${TOKEN_ENV})")
    sv.add_argument(
        "--max-body-bytes", type=int, default=DEFAULTS.max_body_bytes, help="largest body (1 MiB)"
    )
    sv.add_argument(
        "--max-prompts", type=int, default=DEFAULTS.max_prompts, help="most items per request (256)"
    )
    sv.add_argument("--max-batch", type=int, default=DEFAULTS.max_batch, help="most queries per batch (64)")
    sv.add_argument(
        "--batch-wait-ms",
        type=float,
        default=DEFAULTS.batch_wait_ms,
        help="longest a batch waits to fill (0.5)",
    )
    sv.add_argument("--queue-size", type=int, default=DEFAULTS.queue_size, help="most queries waiting (1024)")
    sv.add_argument(
        "--request-timeout", type=float, default=DEFAULTS.request_timeout_s, help="seconds per request (30)"
    )
    sv.add_argument(
        "--backend-timeout",
        type=float,
        default=DEFAULTS.backend_timeout_s,
        help="seconds a backend may take (120)",
    )
    sv.add_argument(
        "--max-reply-bytes",
        type=int,
        default=DEFAULTS.max_reply_bytes,
        help="longest non-streamed backend answer relayed (64 MiB)",
    )
    sv.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULTS.header_timeout_s,
        help="seconds a connection may take to send its headers (10)",
    )
    sv.add_argument(
        "--max-connections", type=int, default=DEFAULTS.max_connections, help="most open connections (1024)"
    )
    sv.add_argument("--cors-origin", action="append", default=[], help="an origin CORS allows (repeatable)")
    sv.add_argument("--access-log", action="store_true", help="log one line per request")
    sv.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def cmd_serve(args: argparse.Namespace) -> int:
    # Idle compute threads sleep instead of spinning: the event loop shares the cores with them
    # (measured on 2 cores: text requests at concurrency 8 went from 23/s to 47/s). Set before
    # torch is imported, which reads it once.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from search.serve.server import read_token, serve

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        token=read_token(args.token_file, dict(os.environ)),
        max_body_bytes=args.max_body_bytes,
        max_prompts=args.max_prompts,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        queue_size=args.queue_size,
        request_timeout_s=args.request_timeout,
        backend_timeout_s=args.backend_timeout,
        max_reply_bytes=args.max_reply_bytes,
        header_timeout_s=args.header_timeout,
        max_connections=args.max_connections,
        cors_origins=tuple(args.cors_origin),
        access_log=args.access_log,
    )
    return serve(args.router, settings, encoder=args.encoder, backends=args.backends)
