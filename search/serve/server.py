"""Starting a served router: load it, bind the port, serve until SIGTERM, drain, exit 0.

``serve(target, settings, ...)`` does it all for the command line (``search serve``) and for a
caller of its own. Everything that can fail at start fails before the first request, in one
line (``UserError``): a bad router path, an encoder missing or not the recorded one, a busy
port, a bad backends file, a token missing for a host beyond this machine. On SIGTERM (or
Ctrl-C) the server stops accepting, finishes the requests in flight (up to
``graceful_timeout_s``) and returns 0.
"""

from __future__ import annotations

import errno
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from search.errors import UserError
from search.files.rundir import RunDir
from search.redact import shown_path
from search.results.run_files import SearchResult
from search.routing.router import Router
from search.serve import INSTALL
from search.serve.settings import TOKEN_ENV, ServeSettings


class _Stop(Exception):
    """SIGTERM or SIGINT, raised once the server has drained (or before it started)."""


def read_token(token_file: str | None, environ: dict[str, str]) -> str | None:
    """The bearer token: the first line of ``token_file``, else ``$ROUTER_SEARCH_TOKEN``.

    Raises:
        UserError: The file cannot be read or holds no token.
    """
    if token_file is None:
        return environ.get(TOKEN_ENV) or None
    try:
        lines = Path(token_file).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--token-file {token_file}: cannot be read ({type(exc).__name__})") from exc
    token = lines[0].strip() if lines else ""
    if not token:
        raise UserError(f"--token-file {token_file}: holds no token (its first line is empty)")
    return token


def router_card(router: Router, target: Path) -> dict[str, Any]:
    """What ``/v1/models`` says of the router: its file and run (names, not paths), how it
    routes, the metric it was chosen by, and its encoder's identity."""
    routing = router.info.get("routing") or {}
    card: dict[str, Any] = {
        "file": router.path.name,
        "run": target.resolve().name if target.is_dir() else router.path.resolve().parent.name,
        "chosen": router.chosen or None,
        "num_models": len(router.names),
        "embedding_dim": router.embedding_dim,
        "rule": router.rule,
        "val_route_acc": routing.get("val_route_acc"),
        "costs": router.costs is not None,
        "budgets": isinstance(routing.get("cost_curve"), dict),
        "encoder": _shown_identity(router),
        "metadata": _shown_metadata(router.info.get("metadata") or {}),
        "tasks": router.task_names,
        "reads_tasks": router.reads_tasks,
    }
    config = RunDir(target).config if target.is_dir() else None
    if config is not None and config.is_file():
        result = SearchResult.read(config)
        if result is not None:
            card["metric"] = {
                "metric": result.metric,
                "mode": result.mode,
                "value": result.value,
                "trial": result.trial,
            }
    return card


def _shown_identity(router: Router) -> dict[str, Any] | None:
    """The encoder's identity as other machines see it: a local folder by its last part."""
    if router.identity is None:
        return None
    shown = router.identity.to_dict()
    shown["name"] = shown_path(str(shown["name"]))
    return shown


def _shown_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A router's metadata without the server's paths (its data source by its last part)."""
    return {k: shown_path(v) if k == "data_source" and isinstance(v, str) else v for k, v in metadata.items()}


def load_served(target: str, encoder: str | None) -> Router:
    """The router to serve, its encoder loaded and tried once (so a missing one fails here).

    Raises:
        UserError / ConfigError: Not a router or run dir; the encoder missing or another.
    """
    router = Router.load(target, encoder=encoder)
    router.freeze()
    if router.identity is not None:
        router.embed(["warm up"])  # loads and checks the encoder; the first request is not slow
    elif encoder is not None:
        raise UserError(
            f"--encoder {encoder}: {router.path} records no encoder, so it routes embeddings only"
        )
    return router


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``.

    Raises:
        UserError: The address is busy, not this machine's, or not allowed.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UserError(f"--host {host}: not an address of this machine ({exc.strerror})") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart binds despite TIME_WAIT
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        why = {
            errno.EADDRINUSE: "is in use by another program; stop it or give another --port",
            errno.EACCES: "needs privileges this user lacks; give a --port above 1023",
            errno.EADDRNOTAVAIL: "is not an address of this machine",
        }.get(exc.errno or 0, f"cannot be bound ({exc.strerror})")
        raise UserError(f"{host}:{port} {why}") from exc
    sock.set_inheritable(True)
    return sock


def make_app(
    target: str, settings: ServeSettings, *, encoder: str | None = None, backends: str | None = None
) -> tuple[Any, Router, dict[str, Any] | None]:
    """The ASGI app serving ``target``, its router and its backends (None without a file).

    Raises:
        UserError: The serve extra is missing; a bad router, encoder or backends file.
    """
    try:
        from search.serve.app import build_app
        from search.serve.backends import read_backends
    except ImportError as exc:
        raise UserError(f"serving needs the serve extra (uvicorn, httpx, orjson): {INSTALL}") from exc
    router = load_served(target, encoder)
    served = read_backends(backends, router.names) if backends else None
    if served is not None and router.identity is None:
        raise UserError(f"--backends: {router.path} records no encoder, so it cannot route chat text")
    return build_app(router, settings, router_card(router, Path(target)), served), router, served


def uvicorn_config(app: Any, settings: ServeSettings, log_level: str = "warning") -> Any:
    """How uvicorn runs ``app``: quiet, graceful on SIGTERM, and on a protocol that closes a
    connection slow to send its headers and bounds the connections open at once
    (``connections.py``)."""
    import uvicorn

    from search.serve.connections import guarded_protocol

    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=int(max(1, settings.graceful_timeout_s)),
        server_header=False,
        lifespan="on",
        http=guarded_protocol(settings.header_timeout_s, settings.max_connections),
    )


def serve(
    target: str,
    settings: ServeSettings,
    *,
    encoder: str | None = None,
    backends: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Serve ``target`` (a router file or run dir) until SIGTERM; 0 once drained.

    Raises:
        UserError: Anything that stops it from starting (see the module doc).
    """
    try:
        import uvicorn
    except ImportError as exc:
        raise UserError(f"serving needs the serve extra (uvicorn, httpx, orjson): {INSTALL}") from exc
    app, router, served = make_app(target, settings, encoder=encoder, backends=backends)
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(uvicorn_config(app, settings))
    proxy = f"; proxy to {len(served)} LLM(s): POST /v1/chat/completions, /v1/completions" if served else ""
    auth = "bearer token required" if settings.token else "loopback only, no token"
    chosen = f" ({router.chosen})" if router.chosen else ""
    say(
        f"serving {router.path}{chosen} on http://{shown}:{port} ({auth}): POST /v1/route, "
        f"GET /v1/models, /healthz, /metrics{proxy}"
    )
    sys.stdout.flush()

    def stop(sig: int, _frame: FrameType | None) -> None:
        raise _Stop(sig)

    # The server takes these signals while it runs and raises them again once it has drained;
    # ours then ends the run with 0 instead of the default action (death by the signal).
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    stopped = False
    try:
        server.run(sockets=[sock])
    except _Stop:
        stopped = True
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    if not server.started and not stopped:
        raise UserError("the server did not start (see the log above)")
    say("stopped: requests in flight were answered")
    return 0
