"""The search end to end, in real (local) Ray Tune runs on tiny data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest
import torch

from router_models import create_model, load_router
from search import metrics as M
from search.__main__ import main
from search.data import load_data
from search.driver.session import KEPT, PREFIX, TEMP_ROOT
from search.space import load_space
from search.study.store import open_study
from tests.search.spaces import TINY_DATA, tiny_space, write_space

pytestmark = pytest.mark.slow


def run(tmp_path: Path, space: dict, *extra: str, name: str = "run") -> tuple[int, Path, Path]:
    path = write_space(tmp_path / f"{name}.yaml", space)
    out, export = tmp_path / name, tmp_path / f"{name}-config.json"
    rc = main(["run", str(path), "--out", str(out), "--export", str(export), *extra])
    return rc, out, export


def ray_dirs() -> set[Path]:
    """Session dirs of local Ray instances."""
    return set(TEMP_ROOT.glob(f"{PREFIX}*"))


def states(out: Path) -> list[str]:
    return pq.read_table(out / "results.parquet").column("state").to_pylist()


def test_prunes_inside_ray_and_writes_every_output(tmp_path: Path, capsys) -> None:
    space = tiny_space(
        params={"epochs": 6},
        search={
            "num_samples": 8,
            "pruner": {"type": "percentile", "percentile": 25.0, "n_startup_trials": 2, "n_warmup_steps": 1},
        },
    )
    rc, out, export = run(tmp_path, space)
    assert rc == 0
    text = capsys.readouterr().out
    assert text.count("\ntrial ") + text.startswith("trial ") >= 8 and "PRUNED" in text

    table = pq.read_table(out / "results.parquet").to_pylist()
    assert len(table) == 8
    pruned = [r for r in table if r["state"] == "PRUNED"]
    complete = [r for r in table if r["state"] == "COMPLETE"]
    assert pruned and complete
    # Tune really stopped them: fewer epochs ran, and the study holds what they reported.
    assert any(r["epochs_run"] < 6 for r in pruned)  # (a pruner may also stop one at its last epoch)
    assert all(r["epochs_run"] == 6 for r in complete)
    assert {
        "param_hidden_dims",
        "param_lr",
        "best_val_auc",
        "last_val_loss",
        "start_time",
        "duration_s",
        "node",
    } <= set(table[0])

    study = open_study(out, load_space(tmp_path / "run.yaml"))
    by_state = {t.number: t for t in study.trials}
    for r in pruned:
        t = by_state[r["trial"]]
        assert t.state == optuna.trial.TrialState.PRUNED
        assert len(t.intermediate_values) == r["epochs_run"]
        # as in Optuna's own loop: a pruned trial's value is its last intermediate value
        assert t.value == t.intermediate_values[r["epochs_run"]]

    config = json.loads(export.read_text())
    assert config == json.loads((out / "config.json").read_text())
    result = config["search_result"]
    assert result["value"] == max(r["value"] for r in complete)
    assert result["trials"] == {"COMPLETE": len(complete), "PRUNED": len(pruned), "FAIL": 0}
    data = load_data(f"synthetic:{','.join(f'{k}={v}' for k, v in TINY_DATA['synthetic'].items())}")
    model = create_model(config, data.embedding_dim, data.num_models)
    router, info = load_router(out / "best_router.pt")
    assert type(router) is type(model)
    assert info["metadata"]["trial_number"] == result["trial"]
    assert router(torch.from_numpy(data.X[:5])).shape == (5, data.num_models)
    assert "test questions)" in text and "val routing  test routing" in text and "kNN, cosine" in text
    assert f"best trial {result['trial']} (mlp)" in text and "95% paired bootstrap" in text
    assert "recommended: " in text and "chosen on val, not on test" in text
    table = json.loads((out / "routing.json").read_text())
    assert table["recommended"] in {r["router"] for r in table["rows"]}
    assert {"vs_knn", "vs_single_best"} <= set(table["rows"][0])
    assert table["recommendation"]["router"] == table["recommended"]
    # the baselines are routers in the run dir, each making its row's decisions on test
    _, y, m = data.split("test")
    for key in ("single_best", "knn"):
        base, _ = load_router(out / "baselines" / f"{key}.pt")
        row = next(r for r in table["rows"] if r["baseline"] == key)
        logits = base(torch.from_numpy(data.split("test")[0]))
        assert M.route_acc(logits, y, m) == pytest.approx(row["route_acc"])
    assert set(result["baselines"]) == {"single_best", "knn"}  # the synthetic data has no tasks

    # the ensemble: its router loads like any other, and config.json names its files
    ens = result.get("ensemble")
    if ens:  # selection keeps a single member when no second one helps on val
        ens_router, ens_info = load_router(out / ens["router"])
        assert ens_info["config"]["pipeline_config"]["model_type"] == "ensemble"
        assert len(ens_router.members) == len(ens["trials"]) >= 2
        assert json.loads((out / ens["summary"]).read_text())["members"][0]["trial"] == ens["trials"][0]
        kept = {int(p.stem.split("_")[1]) for p in (out / "routers").iterdir()}
        assert kept == {result["trial"], *ens["trials"]}  # only the routers still needed

    # results.parquet opens as is in pandas and polars
    import pandas as pd
    import polars as pl

    assert len(pd.read_parquet(out / "results.parquet")) == 8
    assert pl.read_parquet(out / "results.parquet").height == 8

    # the report: markdown and plots
    assert main(["report", str(out)]) == 0
    report = (out / "report.md").read_text()
    for png in ("optimization_history.png", "intermediate_values.png", "param_importances.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in report
    assert "## Routing on the test split" in report and f"best trial {result['trial']} (mlp)" in report
    assert f"- trials: 8 — {len(complete)} complete, {len(pruned)} pruned, 0 failed" in report

    # new queries, routed with the run's recommended router as the run says
    assert f"route new queries with: python -m search route {out} QUERY_EMBEDDINGS.npy" in text
    np.save(tmp_path / "queries.npy", data.X[:20])
    assert main(["route", str(out), str(tmp_path / "queries.npy"), "--out", str(tmp_path / "r.csv")]) == 0
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0] == '"query","llm","llm_index","predicted_correctness"' and len(lines) == 21
    assert "the run's recommended router" in capsys.readouterr().out


def test_failing_trials_are_fail_and_search_goes_on(tmp_path: Path) -> None:
    space = tiny_space(params={"lr": {"choices": [1.0e30, 0.01]}}, search={"seed": 1})
    before = ray_dirs()
    rc, out, export = run(tmp_path, space)
    assert rc == 0
    assert ray_dirs() <= before  # Ray's session dir went with the run
    table = pq.read_table(out / "results.parquet").to_pylist()
    failed = [r for r in table if r["state"] == "FAIL"]
    assert len(failed) == 2 and len(table) == 4
    assert all("loss became nan" in r["error"] for r in failed)
    assert json.loads(export.read_text())["search_result"]["params"]["lr"] == 0.01


def test_all_failing_exits_nonzero_and_keeps_config(tmp_path: Path, capsys) -> None:
    export = tmp_path / "run-config.json"
    export.write_text('{"keep": "me"}\n')
    before = export.read_bytes()
    rc, out, _ = run(tmp_path, tiny_space(params={"lr": 1.0e30}, search={"num_samples": 2}))
    assert rc == 1
    assert "no trial completed; first error: TrainingDiverged: training loss became nan" in (
        capsys.readouterr().out
    )
    assert export.read_bytes() == before
    assert states(out) == ["FAIL", "FAIL"]


def test_debug_keeps_and_names_rays_logs(tmp_path: Path, capsys) -> None:
    before = ray_dirs()
    rc, _, _ = run(tmp_path, tiny_space(search={"num_samples": 1}), "--debug")
    assert rc == 0
    kept = ray_dirs() - before
    assert len(kept) == 1
    (tmp,) = kept
    try:
        assert f"Ray's logs of this run are kept in {tmp}" in capsys.readouterr().out
        assert list(tmp.glob("session_*/logs"))
        assert (tmp / KEPT).exists()  # so no later run sweeps it
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_resume_continues_without_loss_or_repeats(tmp_path: Path) -> None:
    space = tiny_space(search={"num_samples": 3, "sampler": {"type": "tpe", "n_startup_trials": 2}})
    rc, out, _ = run(tmp_path, space)
    assert rc == 0
    first = {r["trial"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}

    # A driver killed mid-trial leaves the trial RUNNING in the study.
    study = open_study(out, load_space(tmp_path / "run.yaml"))
    study.ask()

    path = tmp_path / "run.yaml"
    assert (
        main(
            [
                "run",
                str(path),
                "--out",
                str(out),
                "--resume",
                "--num-samples",
                "5",
                "--export",
                str(tmp_path / "c.json"),
            ]
        )
        == 0
    )
    rows = pq.read_table(out / "results.parquet").to_pylist()
    numbers = [r["trial"] for r in rows]
    assert len(numbers) == len(set(numbers)) == 6  # 3 old + 1 interrupted + 2 new
    interrupted = [r for r in rows if r["interrupted"]]
    assert [r["trial"] for r in interrupted] == [3] and interrupted[0]["state"] == "FAIL"
    counted = [r for r in rows if not r["interrupted"]]
    assert len(counted) == 5
    for number, row in first.items():  # nothing completed before is lost or re-run
        again = next(r for r in rows if r["trial"] == number)
        assert (again["state"], again["value"]) == (row["state"], row["value"])
    assert main(["run", str(path), "--out", str(out), "--export", str(tmp_path / "c.json")]) == 2


def test_gpu_request_without_gpu_runs_on_cpu(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    rc, out, _ = run(tmp_path, tiny_space(resources={"cpu": 1, "gpu": 0.5}, search={"num_samples": 2}))
    assert rc == 0
    assert "no GPU in the Ray cluster: resources.gpu 0.5 ignored, trials run on CPU threads" in (
        capsys.readouterr().out
    )
    assert states(out) == ["COMPLETE", "COMPLETE"]


def test_packed_search_prunes_members_and_exports_like_an_unpacked_one(tmp_path: Path, capsys) -> None:
    space = tiny_space(
        params={"epochs": 6},
        search={
            "num_samples": 12,
            "pack_size": 4,
            "max_concurrent_trials": 1,
            "ensemble": {"size": 0},  # compared file by file with an unpacked run below
            # rungs at epochs 1, 2 and 4: members are judged against the trials (of their own
            # pack too) that reached the rung before them; the first to reach it goes on
            "pruner": {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
        },
    )
    rc, out, export = run(tmp_path, space)
    assert rc == 0
    text = capsys.readouterr().out
    assert "packs of up to 4" in text
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 12 and len({r["trial"] for r in rows}) == 12
    packs = {r["pack"] for r in rows}
    assert len(packs) == 3 and all(sum(r["pack"] == p for r in rows) == 4 for p in packs)
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert pruned and complete and len(pruned) + len(complete) == 12
    # pruned members stopped early while others of their pack trained on
    assert any(r["epochs_run"] < 6 for r in pruned)
    assert all(r["epochs_run"] == 6 for r in complete)
    mixed = [p for p in packs if {r["state"] for r in rows if r["pack"] == p} == {"PRUNED", "COMPLETE"}]
    assert mixed, "no pack had both pruned and completed members"

    study = open_study(out, load_space(tmp_path / "run.yaml"))
    by_number = {t.number: t for t in study.trials}
    for r in rows:
        t = by_number[r["trial"]]
        assert t.state.name == r["state"] and len(t.intermediate_values) == r["epochs_run"]
        assert t.user_attrs["pack"] == r["pack"]

    # the same outputs an unpacked run writes
    rc1, out1, export1 = run(
        tmp_path, tiny_space(search={"num_samples": 2, "ensemble": {"size": 0}}), name="single"
    )
    assert rc1 == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out1.iterdir())
    config = json.loads(export.read_text())
    assert set(config) == set(json.loads(export1.read_text()))
    assert config["search_result"]["value"] == max(r["value"] for r in complete)
    router, info = load_router(out / "best_router.pt")
    assert info["metadata"]["trial_number"] == config["search_result"]["trial"]
    data = load_data(f"synthetic:{','.join(f'{k}={v}' for k, v in TINY_DATA['synthetic'].items())}")
    assert router(torch.from_numpy(data.X[:3])).shape == (3, data.num_models)


def test_cost_aware_search_aims_at_aiq_and_exports_a_budget(tmp_path: Path, capsys) -> None:
    from tests.conftest import write_embedllm
    from tests.search.test_costs import _with_costs

    folder = write_embedllm(tmp_path / "data", n=200, m=4, d=8)
    _with_costs(folder)
    space = tiny_space(search={"num_samples": 3, "metric": "val_aiq"})
    space["data"] = {"path": str(folder)}
    rc, out, export = run(tmp_path, space, "--budget", "0.001")
    assert rc == 0
    text = capsys.readouterr().out
    assert "costs: as the willingness to pay varies" in text and "AIQ" in text
    config = json.loads(export.read_text())
    routing = config["search_result"]["routing"]
    assert routing["budget"] == 0.001 and routing["lambda"] >= 0 and routing["met"]
    assert routing["val_cost"] <= 0.001
    _, info = load_router(out / "best_router.pt")
    assert info["routing"]["lambda"] == routing["lambda"]
    mean = load_data(str(folder)).mean_cost()
    assert info["offsets"] == pytest.approx((-routing["lambda"] * mean).tolist(), rel=1e-5)
    table = pq.read_table(out / "results.parquet").to_pylist()
    assert all(r["best_val_aiq"] is not None for r in table if r["state"] == "COMPLETE")
    assert main(["report", str(out)]) == 0
    assert (out / "cost_curve.png").stat().st_size > 1000
    assert "## Accuracy against cost" in (out / "report.md").read_text()


def test_a_warm_started_search_learns_from_an_earlier_run_and_counts_its_own(tmp_path: Path, capsys) -> None:
    space = tiny_space(search={"sampler": {"type": "tpe", "n_startup_trials": 3}, "num_samples": 3})
    rc, old, _ = run(tmp_path, space, name="old")
    assert rc == 0
    capsys.readouterr()
    rc, new, _ = run(tmp_path, space, "--warm-start", str(old), name="new")
    assert rc == 0
    text = capsys.readouterr().out
    assert f"warm start: 3 of 3 finished trials of {old} seed the study (0 pruned); the same data" in text
    seeds = json.loads((new / "warm_start.json").read_text())
    assert seeds["sources"] == [str(old)] and len(seeds["seeds"]) == 3
    assert len(pq.read_table(new / "results.parquet")) == 3  # its own trials only
    trials = open_study(new, load_space(str(new / "space.yaml")), write=False).trials
    assert [t.number for t in trials] == [0, 1, 2]
    old_trials = open_study(old, load_space(str(old / "space.yaml")), write=False).trials
    best = max((t for t in old_trials if t.value is not None), key=lambda t: t.value)
    assert trials[0].params == best.params  # the earlier run's best is tried again first
