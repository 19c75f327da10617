"""The driver killed (SIGKILL) or interrupted (Ctrl-C) mid-search, then resumed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.search.procs import completed, start_search, study_states, wait_for
from tests.search.spaces import tiny_space, write_space

pytestmark = pytest.mark.slow


def _space(tmp_path: Path, n: int = 6, pack_size: int = 1) -> Path:
    space = tiny_space(
        params={"epochs": 8},
        search={
            "num_samples": n,
            "sampler": {"type": "tpe", "n_startup_trials": 3},
            "pruner": {"type": "median", "n_startup_trials": 3},
            "pack_size": pack_size,
        },
    )
    space["data"] = {"synthetic": {"n_questions": 1500, "n_models": 20, "dim": 64, "seed": 2}}
    return write_space(tmp_path / "space.yaml", space)


def _resume(tmp_path: Path, space: Path, run: Path) -> tuple[int, str]:
    proc = start_search(
        [str(space), "--out", str(run), "--resume", "--export", str(tmp_path / "config.json")], tmp_path
    )
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


@pytest.mark.parametrize("pack_size", [1, 3])
def test_sigkill_then_resume_keeps_every_completed_trial_once(tmp_path: Path, pack_size: int) -> None:
    # Packs of 3 complete three trials at once and two run side by side: with 6 trials the run
    # could end between two polls before the kill; a third pack keeps it running.
    n = 6 if pack_size == 1 else 9
    space, run = _space(tmp_path, n=n, pack_size=pack_size), tmp_path / "run"
    proc = start_search([str(space), "--out", str(run), "--export", str(tmp_path / "config.json")], tmp_path)
    wait_for(lambda: len(completed(run)) >= 2, 240, proc, step=0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = completed(run)
    assert len(before) >= 2
    assert not (tmp_path / "config.json").exists()  # no export from a killed run

    rc, text = _resume(tmp_path, space, run)
    assert rc == 0, text
    assert "resuming" in text
    rows = pq.read_table(run / "results.parquet").to_pylist()
    numbers = [r["trial"] for r in rows]
    assert len(numbers) == len(set(numbers))
    for number, value in before.items():  # exactly once, unchanged
        row = next(r for r in rows if r["trial"] == number)
        assert (row["state"], row["value"]) == ("COMPLETE", value)
    assert sum(not r["interrupted"] for r in rows) == n
    config = json.loads((tmp_path / "config.json").read_text())
    best = max(r["value"] for r in rows if r["state"] == "COMPLETE")
    assert config["search_result"]["value"] == best


def test_ctrl_c_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    space, run = _space(tmp_path), tmp_path / "run"
    proc = start_search([str(space), "--out", str(run), "--export", str(tmp_path / "config.json")], tmp_path)
    wait_for(lambda: len(completed(run)) >= 1, 240, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "stopping: ending running trials and saving state" in err
    assert f"resume with:\n  python -m search run {space} --out {run} --resume" in out
    assert "RUNNING" not in {s for s, _ in study_states(run).values()}
    assert (run / "results.parquet").exists() and not (tmp_path / "config.json").exists()
    before = completed(run)
    from search.__main__ import main

    assert main(["report", str(run)]) == 0  # an interrupted run reports too
    assert "best trial " in (run / "report.md").read_text()

    rc, text = _resume(tmp_path, space, run)
    assert rc == 0, text
    after = completed(run)
    assert all(after[n] == v for n, v in before.items())
    assert (tmp_path / "config.json").exists()


def test_second_ctrl_c_forces_exit(tmp_path: Path) -> None:
    space, run = _space(tmp_path, n=40), tmp_path / "run"
    proc = start_search([str(space), "--out", str(run)], tmp_path)
    wait_for(lambda: len(study_states(run)) >= 1, 240, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "forced exit" in err
