"""Runs that meet on disk: runs sharing one --storage keep their own routers, two drivers on one
run dir (the second refused, the first unharmed), a resume of other space or data refused with
the run dir untouched, read-only commands that write nothing into a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from router_models import load_router
from search.__main__ import main
from search.study.lock import holder_of
from tests.search.procs import completed, start_search, study_states, wait_for
from tests.search.spaces import tiny_space, write_space

pytestmark = pytest.mark.slow

DATA_B = {"synthetic": {"n_questions": 300, "n_models": 5, "dim": 16, "n_topics": 3, "seed": 7}}


def _snapshot(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(skip)
    }


def _run_args(space: Path, run: Path, tmp: Path, *extra: str) -> list[str]:
    return [str(space), "--out", str(run), "--export", str(tmp / f"{run.name}.json"), *extra]


def _own_folder(run: Path) -> Path:
    return Path(json.loads((run / "run.json").read_text())["storage"])


def test_runs_sharing_a_storage_path_each_keep_their_own_routers(tmp_path: Path) -> None:
    storage = tmp_path / "shared"
    space_a = write_space(tmp_path / "a.yaml", tiny_space())
    space_b = write_space(
        tmp_path / "b.yaml",
        tiny_space(
            model_type="mf",
            params={"hidden_dims": [8], "lr": 0.01, "batch_size": 64, "epochs": 4},
            data=DATA_B,
        ),
    )
    run_a, run_b = tmp_path / "run-a", tmp_path / "run-b"
    # concurrently, on one storage path
    procs = [
        start_search(_run_args(space, run, tmp_path, "--storage", str(storage)), tmp_path)
        for space, run in ((space_a, run_a), (space_b, run_b))
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, out + err
    folders = {run: _own_folder(run) for run in (run_a, run_b)}
    assert folders[run_a] != folders[run_b] and {f.parent for f in folders.values()} == {storage}
    assert sorted(p.name for p in storage.iterdir()) == sorted(f.name for f in folders.values())
    for run, (model_type, llms) in ((run_a, ("mlp", 6)), (run_b, ("mf", 5))):
        model, info = load_router(run / "best_router.pt")
        assert model.model_type == model_type and info["num_models"] == llms
        best = json.loads((run / "config.json").read_text())["search_result"]["trial"]
        kept = folders[run] / "routers" / f"trial_{best:05d}.pt"
        assert kept.read_bytes() == (run / "best_router.pt").read_bytes()  # its own trial's router
    # one after the other: resuming A after B ran keeps A's router, and B's folder is untouched
    before_b = _snapshot(folders[run_b])
    proc = start_search(
        _run_args(space_a, run_a, tmp_path, "--storage", str(storage), "--resume", "--num-samples", "6"),
        tmp_path,
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    model, info = load_router(run_a / "best_router.pt")
    assert (
        model.model_type == "mlp"
        and info["model_names"][0] == "synthetic-llm-000"
        and info["num_models"] == 6
    )
    assert _own_folder(run_a) == folders[run_a]  # a resume keeps the run's folder
    assert _snapshot(folders[run_b]) == before_b
    assert len(pq.read_table(run_a / "results.parquet")) == 6


def test_a_second_driver_on_a_run_dir_is_refused_and_the_first_unharmed(tmp_path: Path, capsys) -> None:
    space = write_space(
        tmp_path / "s.yaml", tiny_space(params={"epochs": 25}, search={"max_concurrent_trials": 1})
    )
    run = tmp_path / "run"
    first = start_search(_run_args(space, run, tmp_path), tmp_path)
    wait_for(lambda: any(s == "RUNNING" for s, _ in study_states(run).values()), 120, first)
    holder = holder_of(run)
    assert holder is not None and holder["pid"] == first.pid
    capsys.readouterr()
    assert main(["run", *_run_args(space, run, tmp_path, "--resume")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and f"{run}: in use by another driver (host {holder['host']}, pid {first.pid}," in err
    )
    assert main(["run", *_run_args(space, run, tmp_path)]) == 2  # a fresh run there too
    assert capsys.readouterr().err.count("\n") == 1
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, out + err
    rows = pq.read_table(run / "results.parquet").to_pylist()
    assert [r["state"] for r in rows] == ["COMPLETE"] * 4 and not any(r["interrupted"] for r in rows)
    assert holder_of(run) is None  # released at the end


def test_two_fresh_runs_on_one_out_started_together_one_runs(tmp_path: Path) -> None:
    space = write_space(tmp_path / "s.yaml", tiny_space())
    run = tmp_path / "run"
    procs = [start_search(_run_args(space, run, tmp_path), tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, _, err in results if rc == 2)
    assert loser.count("\n") == 1 and ("in use by another driver" in loser or "already holds a run" in loser)
    assert sorted(completed(run)) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("finished")
    space = write_space(tmp / "space.yaml", tiny_space())
    assert main(["run", *_run_args(space, tmp / "run", tmp)]) == 0
    return space, tmp / "run"


def test_resume_with_another_space_or_other_data_is_refused_untouched(
    finished, tmp_path: Path, capsys
) -> None:
    space, run = finished
    before = _snapshot(run)
    other = write_space(tmp_path / "other.yaml", tiny_space(search={"pruner": {"type": "median"}}))
    capsys.readouterr()
    assert main(["run", *_run_args(other, run, tmp_path, "--resume")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --resume: {run} searched another space (search.pruner.type: 'none' in the run, 'median' "
        f"now); resume with the run's space ({run}/space.yaml), or start a new run with another --out\n"
    )
    data = "synthetic:n_questions=300,n_models=6,dim=16,n_topics=3,seed=5"
    assert main(["run", *_run_args(space, run, tmp_path, "--resume", "--data", data)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --resume: {run} was trained on other data: the same shape, other contents")
    assert err.count("\n") == 1
    assert _snapshot(run) == before  # space.yaml, run.json, the study: byte-identical


def test_read_only_commands_write_nothing_into_a_run(finished, tmp_path: Path, monkeypatch, capsys) -> None:
    import numpy as np

    _, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = _snapshot(copy)
    monkeypatch.chdir(tmp_path)
    queries = tmp_path / "q.npy"
    np.save(queries, np.zeros((3, 16), dtype=np.float32))
    assert main(["validate", str(copy / "space.yaml")]) == 0
    assert main(["route", str(copy), str(queries), "--out", str(tmp_path / "routes.csv")]) == 0
    assert main(["report", str(copy)]) == 0
    # the report writes its own files (report.md, the plots) and nothing else: the study is
    # read, never written
    after = {k: v for k, v in _snapshot(copy).items() if not k.endswith((".png", "report.md"))}
    assert after == before
    assert (copy / "report.md").is_file()
