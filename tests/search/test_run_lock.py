"""The run-dir lock, run ids and storage folders, and what a resume must match (no Ray here)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from search.data.fingerprint import data_record, difference
from search.data.sources import load_synthetic
from search.data.synthetic import SyntheticSpec
from search.driver.plan import default_run_dir
from search.errors import UserError
from search.files.rundir import RunDir
from search.results.records import RunInfo, new_run_id, read_run_info, run_storage, space_difference
from search.space import parse_space
from search.study.lock import STALE_AFTER_S, RunDirInUse, RunLock, holder_of
from tests.search.procs import ROOT
from tests.search.spaces import tiny_space


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r"
    with RunLock(run) as first:
        assert first.held and (run / RunDir.LOCK).is_file()
        holder = holder_of(run)
        assert holder is not None and holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(RunDirInUse) as caught:
            RunLock(run).acquire()  # in the same process too: the lock is the open file's
        message = str(caught.value)
        assert message.startswith(
            f"{run}: in use by another driver (host {socket.gethostname()}, pid {os.getpid()}"
        )
        assert "since 20" in message and message.count("\n") == 0
    # released: the lock file and the dirs the lock made are gone, nothing else was written
    assert not run.exists() and not run.parent.exists()


def test_release_keeps_a_dir_that_was_there_or_was_written_in(tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    with RunLock(existing):
        pass
    assert existing.is_dir() and not any(existing.iterdir())
    made = tmp_path / "made"
    with RunLock(made) as lock:
        (made / "run.json").write_text("{}")
        lock.keep_dir()
    assert sorted(p.name for p in made.iterdir()) == ["run.json"]


def test_the_lock_of_a_killed_driver_is_taken_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = (
        "import sys, time; from pathlib import Path; from search.study.lock import RunLock; "
        f"RunLock(Path({str(run)!r})).acquire(); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    with pytest.raises(RunDirInUse, match=f"pid {proc.pid},"):
        RunLock(run).acquire()
    proc.send_signal(signal.SIGKILL)  # no clean-up runs: the lock file stays, naming it
    proc.wait(timeout=10)
    assert holder_of(run)["pid"] == proc.pid
    with RunLock(run) as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == proc.pid
        assert holder_of(run)["pid"] == os.getpid()


def test_a_fresh_lock_of_another_host_refuses_a_stale_one_is_taken(tmp_path: Path) -> None:
    # A file system that does not carry locks between machines: only the heartbeat tells.
    run = tmp_path / "run"
    run.mkdir()
    (run / RunDir.LOCK).write_text(json.dumps({"host": "other-node", "pid": 4242, "since": time.time()}))
    with pytest.raises(RunDirInUse, match="host other-node, pid 4242"):
        RunLock(run).acquire()
    old = time.time() - STALE_AFTER_S - 5
    os.utime(run / RunDir.LOCK, (old, old))
    with RunLock(run) as lock:
        assert lock.took_over is not None and lock.took_over["host"] == "other-node"


def test_default_run_dirs_and_run_ids_never_repeat(tmp_path: Path) -> None:
    space = parse_space(tiny_space(), name="tiny")
    dirs = {default_run_dir(space) for _ in range(200)}  # all within the same second
    assert len(dirs) == 200 and all(d.name.startswith("tiny-") for d in dirs)
    taken = tmp_path / "taken"
    taken.mkdir()
    with pytest.raises(FileExistsError):
        RunLock(taken, new=True).acquire()  # a default name already taken: the caller picks another
    assert len({new_run_id(taken) for _ in range(200)}) == 200


def test_a_given_run_dir_made_by_another_driver_meanwhile_is_locked_not_renamed(
    tmp_path: Path, monkeypatch
) -> None:
    """Two drivers on one --out: both see no dir, one makes it first; the other's mkdir fails.
    It locks the dir as it is (refused when held), and never runs elsewhere."""
    from search.driver.plan import RunOptions, plan_run
    from search.driver.runner import claim_run_dir
    from tests.search.spaces import write_space

    space = write_space(tmp_path / "s.yaml", tiny_space())
    run = tmp_path / "run"
    plan = plan_run(RunOptions(space=str(space), out=str(run), export=str(tmp_path / "c.json")))
    real = RunLock.acquire
    calls = []

    def racing(self: RunLock) -> RunLock:
        calls.append(self.run_dir)
        if len(calls) == 1:  # the other driver made the dir between our look and our mkdir
            self.run_dir.mkdir(parents=True)
            raise FileExistsError(str(self.run_dir))
        return real(self)

    monkeypatch.setattr(RunLock, "acquire", racing)
    claimed, lock = claim_run_dir(plan)
    try:
        assert claimed.run_dir == run.resolve() and calls == [run.resolve()] * 2
    finally:
        lock.release()
    held = RunLock(run).acquire()
    try:
        monkeypatch.setattr(RunLock, "acquire", real)
        with pytest.raises(RunDirInUse):
            claim_run_dir(plan)
    finally:
        held.release()


def test_each_run_has_its_own_folder_on_shared_storage(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert run_storage(None, run, "run-1a2b3c4d") == str(run)  # local: the run dir itself
    assert run_storage("/mnt/shared/rs", run, "run-1a2b3c4d") == "/mnt/shared/rs/run-1a2b3c4d"
    assert run_storage("s3://bucket/rs/", run, "exp-00ff00ff") == "s3://bucket/rs/exp-00ff00ff"
    assert run_storage("/mnt/shared/rs", run, None) == "/mnt/shared/rs"  # a run recorded before ids


def test_space_difference_names_the_first_key_that_changes_the_search() -> None:
    base = parse_space(tiny_space())
    same = parse_space(
        tiny_space(
            search={"num_samples": 40, "max_concurrent_trials": 1, "pack_size": "auto"}, resources={"cpu": 2}
        )
    )
    assert space_difference(base, same) is None  # how the run is carried out may change
    pruner = parse_space(tiny_space(search={"pruner": {"type": "median"}}))
    assert space_difference(base, pruner) == "search.pruner.type: 'none' in the run, 'median' now"
    epochs = parse_space(tiny_space(params={"epochs": 5}))
    assert space_difference(base, epochs) == "params.epochs: 4 in the run, 5 now"
    added = parse_space(tiny_space(params={"weight_decay": 0.1}))
    assert space_difference(base, added) == "params.weight_decay: None in the run, 0.1 now"


def _data(**kw):
    return load_synthetic(SyntheticSpec(**{"n_questions": 60, "n_models": 3, "dim": 4, **kw}))


def test_data_fingerprints_tell_other_data_from_the_same() -> None:
    a = data_record(_data())
    assert difference(a, data_record(_data())) is None
    moved = {**data_record(_data()), "source": "/elsewhere/data"}
    assert difference(a, moved) is None  # a moved folder with the same content is the same data
    assert difference(a, data_record(_data(seed=1))) == (
        "the same shape, other contents (labels, embeddings, costs or splits differ)"
    )
    assert difference(a, data_record(_data(dim=5))) == "4-d embeddings then, 5-d now"
    assert difference(a, data_record(_data(n_models=4))) == "other LLMs: 1 new ('synthetic-llm-003'...)"
    assert difference(a, data_record(_data(n_questions=61))) == "60 questions then, 61 now"
    one = _data()
    one.Y[one.splits["train"][0], 0] = 1 - one.Y[one.splits["train"][0], 0]
    assert data_record(one)["sha256"] != a["sha256"]  # one label flipped is other data


def test_a_garbage_run_record_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("[1, 2")
    with pytest.raises(
        UserError, match=r"run.json line 1: not valid JSON .* \(expected a run's record, a JSON object\)"
    ):
        read_run_info(tmp_path)
    (tmp_path / "run.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="run.json: expected a run's record, a JSON object; got list"):
        read_run_info(tmp_path)
    (tmp_path / "run.json").write_text('{"storage": 3}')
    with pytest.raises(UserError, match="run.json: storage is 3, not a text"):
        read_run_info(tmp_path)
    assert read_run_info(tmp_path / "none") == RunInfo()
