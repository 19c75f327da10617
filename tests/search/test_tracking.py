"""``--mlflow``: every Optuna trial of a packed search is one MLflow run, read back with MLflow's
own client; a store that refuses costs a warning, not the search."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from search.__main__ import main
from search.space import load_space
from search.study.store import open_study
from tests.search.spaces import tiny_space, write_space

pytest.importorskip("mlflow")  # the `mlflow` extra (in the test extra)
pytestmark = pytest.mark.slow


def _space() -> dict:
    return tiny_space(
        search={
            "num_samples": 6,
            "pack_size": 3,
            "max_concurrent_trials": 1,
            "pruner": {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
            "ensemble": {"size": 2},
        }
    )


def test_every_trial_is_one_mlflow_run_with_its_params_steps_and_state(tmp_path: Path, capsys) -> None:
    from mlflow.tracking import MlflowClient

    path, out, store = write_space(tmp_path / "run.yaml", _space()), tmp_path / "run", tmp_path / "mlruns"
    rc = main(
        ["run", str(path), "--out", str(out), "--export", str(tmp_path / "c.json"), "--mlflow", str(store)]
    )
    assert rc == 0
    assert "warning" not in capsys.readouterr().out
    # a folder holds a database store MLflow's own client opens as the README says
    assert (store / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=f"sqlite:///{store.resolve() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("run")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("router_search.kind") == "search"]
    children = {
        int(r.data.tags["trial_number"]): r for r in runs if r is not parent and "trial_number" in r.data.tags
    }
    study = open_study(out, load_space(path), write=False)
    assert sorted(children) == [t.number for t in study.trials]
    status = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
    for t in study.trials:
        run = children[t.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == status[t.state.name] and run.data.tags["state"] == t.state.name
        assert run.data.tags["pack"] == str(t.user_attrs["pack"]) and run.data.tags["model_type"] == "mlp"
        assert run.data.params == {k: str(v) for k, v in t.params.items()}
        history = client.get_metric_history(run.info.run_id, "val_auc")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(1, t.user_attrs["epochs_run"] + 1)
        )
        assert max(m.value for m in history) == pytest.approx(t.user_attrs["best_metrics"]["val_auc"])
    assert {t.state.name for t in study.trials} >= {"COMPLETE", "PRUNED"}
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"config.json", "best_router.pt", "results.parquet", "routing.json"} <= artifacts
    assert parent.data.params["metric"] == "val_auc"


def test_a_tracking_server_that_refuses_costs_a_warning_only(tmp_path: Path, capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    path, out = write_space(tmp_path / "run.yaml", _space()), tmp_path / "run"
    uri = f"http://127.0.0.1:{port}"
    rc = main(["run", str(path), "--out", str(out), "--export", str(tmp_path / "c.json"), "--mlflow", uri])
    assert rc == 0 and (out / "best_router.pt").is_file()
    text = capsys.readouterr().out
    warnings = [line for line in text.splitlines() if line.startswith("warning: --mlflow")]
    assert len(warnings) == 1 and "the search goes on without tracking" in warnings[0]


def test_a_uri_of_no_form_is_one_line_whether_mlflow_is_installed_or_not(monkeypatch) -> None:
    from search.driver.plan import check_mlflow
    from search.errors import UserError

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as where MLflow is not installed
    with pytest.raises(UserError, match=r"--mlflow '::::': neither a tracking URI"):
        check_mlflow("::::")
    with pytest.raises(UserError, match=r"needs MLflow"):
        check_mlflow("http://127.0.0.1:5000")
