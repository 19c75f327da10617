"""``search dashboard RUN_DIR``: the run's study in a browser, live while the run writes it.

The dashboard is optuna-dashboard over the run's study journal (read as the run appends to
it, so a run in progress shows each trial as it is told), bound to 127.0.0.1 unless ``--host``
says otherwise. It has no login: on another host anyone who reaches the port sees the study.
"""

from __future__ import annotations

import argparse

from search.errors import UserError

# The dashboard release the extra pins: the first that works with Optuna 5 (tested by
# tests/search/test_dashboard.py against the Optuna the project installs).
INSTALL = 'pip install "router-search[dashboard]"'


def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("dashboard", help="watch a run's study in a browser (live while it runs)")
    db.add_argument("run_dir", help="a run dir (its study.journal)")
    db.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    db.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    db.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from search.rundir import RunDir
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
    from optuna.storages.journal import JournalFileBackend

    bind(args.host, args.port).close()  # a busy port or a wrong host: one line, before serving
    storage = JournalStorage(JournalFileBackend(str(rd.study)))
    where = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"dashboard of {rd.path} on http://{where}:{args.port}/ (Ctrl-C to stop)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: the dashboard has no login; anyone who reaches {args.host}:{args.port} sees the study")
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port)
    except KeyboardInterrupt:
        pass
    return 0
