"""``search dashboard RUN_DIR``: the run's study in a browser, live while the run writes it.

The dashboard is optuna-dashboard over the run's study journal (read as the run appends to
it, so a run in progress shows each trial as it is told), bound to 127.0.0.1 unless ``--host``
says otherwise. It has no login: on another host anyone who reaches the port sees the study.
It is read-only: a request that would change the study (any method but GET and HEAD: delete or
rename a study, tell a trial, write notes) is refused with 405, and the journal is opened
through a reader that cannot write (``search/study/journal.py``), so no page, not even another site's
in the user's browser, can change a run. A damaged line of the journal is passed over.
"""

from __future__ import annotations

import argparse
from typing import Any

from search.errors import UserError

# The dashboard release the extra pins: the first that works with Optuna 5 (tested by
# tests/search/test_dashboard.py against the Optuna the project installs).
INSTALL = 'pip install "router-search[dashboard]"'


def add_dashboard_parser(db: argparse.ArgumentParser) -> None:
    """The ``dashboard`` command's own arguments, on its parser."""
    db.add_argument("run_dir", help="a run dir (its study.journal)")
    db.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    db.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from search.files.rundir import RunDir
    from search.serve.server import bind

    rd = RunDir(Path(args.run_dir).resolve())
    if not rd.study.is_file():
        raise UserError(f"{args.run_dir}: holds no run ({RunDir.STUDY} not found)")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be from 0 to 65535")
    try:
        import optuna_dashboard
    except ImportError as exc:
        raise UserError(f"search dashboard needs optuna-dashboard: {INSTALL}") from exc
    from optuna.storages import JournalStorage

    from search.study.journal import ReadOnlyJournal

    bind(args.host, args.port).close()  # a busy port or a wrong host: one line, before serving
    journal = ReadOnlyJournal(rd.study)
    try:
        storage = JournalStorage(journal)  # type: ignore[arg-type]  # Optuna's backend interface
    except Exception as exc:  # records that refer to lost ones: Optuna cannot replay them
        raise UserError(
            f"{rd.study}: the study cannot be read ({type(exc).__name__}); see search report"
        ) from exc
    server = _server(args.host, args.port, read_only(optuna_dashboard.wsgi(storage)))
    where = args.host if ":" not in args.host else f"[{args.host}]"
    port = server.server_address[1]  # the bound one, also for --port 0
    if journal.damaged:
        line, what = journal.damaged[0]
        print(f"note: {rd.study}: {len(journal.damaged)} damaged line(s) passed over (line {line}: {what})")
    print(f"dashboard of {rd.path} on http://{where}:{port}/ (read-only; Ctrl-C to stop)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: the dashboard has no login; anyone who reaches {args.host}:{args.port} sees the study")
    serve_until_signal(server)
    return 0


READ_METHODS = ("GET", "HEAD")


def read_only(app: Any) -> Any:
    """The WSGI ``app`` refusing every request that is not a read (405, one line of JSON)."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET").upper() in READ_METHODS:
            return app(environ, start_response)
        body = b'{"reason": "the dashboard is read-only: the run\'s study is not changed here"}\n'
        start_response(
            "405 Method Not Allowed",
            [
                ("Content-Type", "application/json"),
                ("Allow", ", ".join(READ_METHODS)),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    return guarded


def _server(host: str, port: int, app: Any) -> Any:
    """A threaded WSGI server for ``app`` on ``host:port``, quiet (no line per request)."""
    import socket
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  # the base's name
            pass

    return make_server(host, port, app, server_class=Server, handler_class=Quiet)


def serve_until_signal(server: Any) -> None:
    """Serve on a thread until SIGINT or SIGTERM; then stop taking requests and return. (A
    signal that lands inside a request handler of the stdlib's WSGI server is caught and logged
    there, and the server would serve on: so the signal only sets a flag here.)"""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
