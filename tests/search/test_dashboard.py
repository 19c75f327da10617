"""``search dashboard``: the run's study over HTTP on 127.0.0.1, finished and while it grows."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from search.driver.bridge import OptunaBridge
from search.driver.packer import Packer
from search.driver.tune_side import TuneSide
from search.space import parse_space
from search.study.store import open_study
from search.trial.protocol import EpochResult, PackResult
from tests.search.procs import start_python, wait_for
from tests.search.spaces import tiny_space

pytest.importorskip("optuna_dashboard")  # the `dashboard` extra (in the test extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())
    except OSError:
        return None


def _pack(bridge: OptunaBridge, tune_id: str, value: float) -> None:
    """One pack through the bridge as a run drives it: asked, one epoch, completed."""
    members = TuneSide.of(bridge).searcher.suggest(tune_id)["members"]
    numbers = [m["number"] for m in members]
    bridge.on_result(
        tune_id, EpochResult(1, {n: {"val_auc": value, "val_loss": 0.5} for n in numbers}).to_result()
    )
    bridge.complete(tune_id, PackResult({n: 1 for n in numbers}, {}).to_result(), False)


def test_the_dashboard_serves_a_run_and_follows_it_while_it_grows(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(tiny_space(search={"num_samples": 4, "pack_size": 2}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    study = open_study(run_dir, space)
    study.set_metric_names(["val_auc"])
    bridge = OptunaBridge(study, space, 4, Packer(study, space, 2, 16, 6))
    _pack(bridge, "a", 0.7)  # two trials done: a run in progress

    port = _free_port()
    proc = start_python(["-m", "search", "dashboard", str(run_dir), "--port", str(port)], tmp_path)
    try:
        api = f"http://127.0.0.1:{port}/api"
        wait_for(lambda: _get(f"{api}/studies") is not None, 30, proc, step=0.2)
        (summary,) = _get(f"{api}/studies")["study_summaries"]
        study_id = summary["study_id"]
        trials = _get(f"{api}/studies/{study_id}")["trials"]
        assert [t["state"] for t in trials] == ["Complete", "Complete"]
        attrs = {a["key"]: a["value"] for a in trials[0]["user_attrs"]}
        assert attrs["pack"] == "0" and attrs["model_type"] == "mlp" and float(attrs["val_auc"]) == 0.7
        _pack(bridge, "b", 0.8)  # the run goes on: the dashboard shows the new trials
        wait_for(lambda: len(_get(f"{api}/studies/{study_id}")["trials"]) == 4, 20, proc, step=0.2)
        best = _get(f"{api}/studies/{study_id}")["best_trials"]
        assert best and best[0]["values"] == [0.8]
        # Ctrl-C while requests are in flight still ends it (the stdlib's server logs a signal
        # that lands inside a request handler and serves on; ours only sets a flag)
        busy = threading.Thread(target=lambda: [_get(f"{api}/studies/{study_id}") for _ in range(30)])
        busy.start()
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"on http://127.0.0.1:{port}/" in out


def test_a_dir_without_a_run_or_a_busy_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = start_python(["-m", "search", "dashboard", str(tmp_path / "nothing")], tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and err.strip().count("\n") == 0
    assert "holds no run (study.journal not found)" in err
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    open_study(run_dir, parse_space(tiny_space()))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = start_python(["-m", "search", "dashboard", str(run_dir), "--port", str(port)], tmp_path)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and f"127.0.0.1:{port} is in use by another program" in err


def _finished_run(tmp_path: Path) -> Path:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(tiny_space(search={"num_samples": 4, "pack_size": 2}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    study = open_study(run_dir, space)
    bridge = OptunaBridge(study, space, 4, Packer(study, space, 2, 16, 6))
    _pack(bridge, "a", 0.7)
    return run_dir


def _call(app, method: str, path: str) -> tuple[str, bytes]:
    from wsgiref.util import setup_testing_defaults

    environ: dict = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": "2"}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = __import__("io").BytesIO(b"{}")
    got: list[str] = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: got.append(status)))
    return got[0], body


MUTATING = [
    ("POST", "/api/studies"),
    ("POST", "/api/studies/0/rename"),
    ("DELETE", "/api/studies/0"),
    ("PUT", "/api/studies/0/note"),
    ("POST", "/api/studies/0/preference"),
    ("PUT", "/api/studies/0/preference_feedback_component"),
    ("DELETE", "/api/studies/0/preference/x"),
    ("POST", "/api/studies/0/preference/x"),
    ("POST", "/api/trials/0/tell"),
    ("POST", "/api/trials/0/user-attrs"),
    ("POST", "/api/studies/0/0/skip"),
    ("PUT", "/api/studies/0/0/note"),
    ("POST", "/api/artifacts/0/0"),
    ("POST", "/api/artifacts/0"),
    ("DELETE", "/api/artifacts/0/0/0a"),
    ("PATCH", "/api/studies/0"),
]


def test_no_request_changes_the_runs_study(tmp_path: Path) -> None:
    import optuna_dashboard
    from optuna.storages import JournalStorage

    from search.cli.dashboard import read_only
    from search.study.journal import ReadOnlyJournal

    run_dir = _finished_run(tmp_path)
    journal = run_dir / "study.journal"
    before = journal.read_bytes()
    storage = JournalStorage(ReadOnlyJournal(journal))
    app = read_only(optuna_dashboard.wsgi(storage))
    for method, path in MUTATING:
        status, body = _call(app, method, path)
        assert status.startswith("405") and b"read-only" in body, (method, path)
    status, body = _call(app, "GET", "/api/studies")
    assert status.startswith("200") and len(json.loads(body)["study_summaries"]) == 1
    # under the guard, the storage itself cannot write either
    with pytest.raises(PermissionError, match="read-only here"):
        storage.delete_study(0)
    assert journal.read_bytes() == before


def test_a_damaged_line_is_passed_over_and_port_0_says_the_bound_port(tmp_path: Path) -> None:
    from search.study.journal import ReadOnlyJournal

    run_dir = _finished_run(tmp_path)
    journal = run_dir / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    intact = len(lines)
    lines.insert(len(lines) - 2, b'{"op_code": 5, "trial_id": \n')  # damaged, in the middle
    journal.write_bytes(b"".join(lines) + b'{"op_code": 4')  # and a record still being written
    reader = ReadOnlyJournal(journal)
    assert len(reader.read_logs(0)) == intact
    assert reader.damaged == [(intact - 1, "not valid JSON")]
    proc = start_python(["-m", "search", "dashboard", str(run_dir), "--port", "0"], tmp_path)
    try:
        note, line = proc.stdout.readline(), proc.stdout.readline()
        assert f"1 damaged line(s) passed over (line {intact - 1}: not valid JSON)" in note
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        assert port > 0 and "(read-only; Ctrl-C to stop)" in line
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/api/studies") is not None, 30, proc, step=0.2)
        (summary,) = _get(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert _get(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}")["trials"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
