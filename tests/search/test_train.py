from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from router_models import ConfigError, load_router
from search.__main__ import main
from search.data import load_data
from search.routing.inference import split_metrics
from search.trial.train import train_router
from search.trial.train_config import TRAIN_DEFAULTS, resolve_train_config
from tests.conftest import TINY_SYNTH


def cfg(model_type: str = "mlp", **train: object) -> dict:
    return {
        "pipeline_config": {
            "model_type": model_type,
            "model_config": {"hidden_dims": [32], "dropout": 0.1, "activation": "relu"},
            "train_config": {"epochs": 4, "batch_size": 64, **train},
        }
    }


@pytest.fixture(scope="module")
def data():
    return load_data(TINY_SYNTH)


def test_reports_every_epoch_and_keeps_best(data) -> None:
    seen: list[tuple[int, dict]] = []

    def report(rep):
        seen.append((rep.epoch, rep.metrics[0]))
        return ()

    res = train_router(cfg(), data, report=report, metric="val_auc")
    assert [e for e, _ in seen] == [1, 2, 3, 4] and res.epochs_run == 4
    assert set(seen[0][1]) == {
        "train_loss",
        "val_loss",
        "val_correctness_acc",
        "val_auc",
        "val_route_acc",
        "param_count",  # of the architecture, the same every epoch
    }
    aucs = [m["val_auc"] for _, m in seen]
    assert res.best_value == max(aucs) and res.best_epoch == aucs.index(max(aucs)) + 1
    # the returned model is the best epoch's
    assert split_metrics(res.model, data, "val")["auc"] == pytest.approx(res.best_value, abs=1e-6)


def test_a_report_naming_the_member_stops_it(data) -> None:
    res = train_router(cfg(), data, report=lambda rep: [0] if rep.epoch >= 2 else [])
    assert res.epochs_run == 2 and res.stopped_early and res.status == "stopped"


def test_reproducible_on_cpu(data) -> None:
    a = train_router(cfg(), data, seed=7)
    b = train_router(cfg(), data, seed=7)
    c = train_router(cfg(), data, seed=8)
    assert a.history == b.history and a.history != c.history


def test_learns_beyond_single_best() -> None:
    d = load_data("synthetic:n_questions=1500,n_models=12,dim=64,n_topics=4,seed=1")
    res = train_router(cfg(epochs=25, lr=3e-3), d, metric="val_loss")
    m = split_metrics(res.model, d, "test")
    assert m["route_acc"] > m["single_best_route_acc"] + 0.05
    assert m["route_acc"] < m["oracle_route_acc"]


def test_nan_loss_raises(data) -> None:
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1"):
        train_router(cfg(lr=1e30), data)


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"lr": -1}, r"train_config.lr must be a number >= 0, got -1"),
        ({"batch_size": 0}, r"train_config.batch_size must be an integer from 1 to 16,777,216, got 0"),
        ({"momentum": 0.9}, r"unknown key\(s\) \['momentum'\]"),
    ],
)
def test_bad_train_config(train: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_train_config(cfg(**train))


def test_defaults_fill_train_config() -> None:
    tc = resolve_train_config({"model_type": "mlp", "model_config": {"hidden_dims": [4]}})
    assert tc == TRAIN_DEFAULTS


def test_saved_router_scores_raw_embeddings(data, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg("residual_mlp", epochs=2)))
    out = tmp_path / "out"
    assert main(["train", str(config), "--data", TINY_SYNTH, "--out", str(out), "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for split in ("val", "test"):
        assert set(metrics[split]) - {"route_acc_with_margin"} == {
            "loss",
            "correctness_acc",
            "auc",
            "route_acc",
            "single_best_route_acc",
            "oracle_route_acc",
        }
    assert 1 <= metrics["best_epoch"] <= 2
    model, info = load_router(out / "router.pt")
    X, Y, mask = data.split("test")
    scores = model(torch.from_numpy(X))  # raw embeddings: standardization is inside the router
    from search.metrics import route_acc

    assert route_acc(scores, Y, mask) == pytest.approx(metrics["test"]["route_acc"], abs=1e-6)
    assert info["model_names"] == data.model_names
    # the routing decision, tuned on val, is saved with the router and routes the test split
    routing = info["routing"]
    assert routing["anchor_name"] == data.model_names[routing["anchor"]] and routing["margin"] >= 0
    assert info["offsets"][routing["anchor"]] == routing["margin"]
    assert route_acc(scores, Y, mask, info["offsets"]) == pytest.approx(
        metrics["test"]["route_acc_with_margin"], abs=1e-6
    )
    assert routing["val_route_acc"] >= routing["val_route_acc_plain"]  # tuned on val: never worse there


def test_train_cli_errors(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"model": "mlp"}))
    assert main(["train", str(bad), "--data", TINY_SYNTH, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no 'pipeline_config'" in err and "\n" not in err
    cfg_dropout = cfg()
    cfg_dropout["pipeline_config"]["model_config"]["dropout"] = 1.5
    bad.write_text(json.dumps(cfg_dropout))
    assert main(["train", str(bad), "--data", TINY_SYNTH, "--out", str(tmp_path / "o")]) == 2
    assert "dropout must be in [0, 1)" in capsys.readouterr().err
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps({**cfg(), "pipeline_config": {**cfg()["pipeline_config"], "embedding_dim": 768}})
    )
    assert main(["train", str(good), "--data", TINY_SYNTH, "--out", str(tmp_path / "o")]) == 2
    assert "embedding_dim is 768 but the data" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_data_cli(tmp_path: Path, capsys) -> None:
    assert main(["data", "describe", TINY_SYNTH]) == 0
    out = capsys.readouterr().out
    assert "models: 6" in out and "single best model (on train)" in out and "oracle" in out
    assert main(["data", "convert", TINY_SYNTH, str(tmp_path / "pq")]) == 0
    assert (tmp_path / "pq" / "model_order.parquet").exists()
    assert main(["data", "describe", str(tmp_path / "pq")]) == 0
    assert "models: 6" in capsys.readouterr().out
    assert main(["data", "convert", TINY_SYNTH, str(tmp_path / "pq")]) == 2
    assert main(["data", "describe", str(tmp_path / "missing")]) == 2


def test_describe_mmlu_pro(capsys) -> None:
    assert main(["data", "describe", "mmlu-pro"]) == 0  # the built-in set: runs everywhere
    out = capsys.readouterr().out
    assert "models: 29" in out
    assert "single best model (on train): gemini-1.5-pro-002" in out
    test_line = next(line for line in out.splitlines() if line.startswith("test "))
    assert test_line.split()[-2:] == ["0.7051", "0.9510"]


def test_cuda_request_without_cuda_is_user_error(tmp_path: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg()))
    assert main(["train", str(config), "--data", TINY_SYNTH, "--device", "cuda"]) == 2
    assert "no CUDA device" in capsys.readouterr().err


def test_isfinite_history(data) -> None:
    res = train_router(cfg(), data)
    assert all(math.isfinite(v) for h in res.history for v in h.values())
