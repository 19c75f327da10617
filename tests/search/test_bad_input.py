"""Malformed input: exit 2, one line naming the problem and the place, no traceback, nothing
written, and a config.json already on disk left byte-identical."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import yaml

from search.__main__ import main
from tests.conftest import write_embedllm
from tests.search.spaces import tiny_space

GOOD_CONFIG = '{"pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [8]}}}\n'


def _space(tmp: Path, space: dict | str) -> str:
    path = tmp / "space.yaml"
    path.write_text(space if isinstance(space, str) else yaml.safe_dump(space))
    return str(path)


def _data(tmp: Path, edit) -> str:
    folder = write_embedllm(tmp / "data", d=16)
    edit(folder)
    return str(folder)


def _set_label(folder: Path) -> None:
    lines = (folder / "train.csv").read_text().splitlines()
    parts = lines[3].split(",")
    parts[3] = "2"
    lines[3] = ",".join(parts)
    (folder / "train.csv").write_text("\n".join(lines) + "\n")


def _nan(folder: Path) -> None:
    X = torch.load(folder / "question_embeddings.pth", weights_only=True)
    X[5, 0] = float("nan")
    torch.save(X, folder / "question_embeddings.pth")


def _truncate(folder: Path) -> None:
    path = folder / "question_embeddings.pth"
    path.write_bytes(path.read_bytes()[:300])


def _drop_column(folder: Path) -> None:
    text = (folder / "val.csv").read_text().replace("prompt_id", "question", 1)
    (folder / "val.csv").write_text(text)


# (argv builder, expected fragment of the one error line)
CASES = {
    "yaml syntax": (
        lambda t: ["run", _space(t, "model_type: mlp\nparams: {hidden_dims: [8]\n")],
        "YAML syntax error",
    ),
    "unknown key": (lambda t: ["run", _space(t, tiny_space(searh={}))], "searh: unknown key"),
    "wrong type": (
        lambda t: ["run", _space(t, tiny_space(search={"num_samples": "many"}))],
        "search.num_samples: Input should be a valid integer",
    ),
    "low > high": (
        lambda t: ["run", _space(t, tiny_space(params={"lr": {"low": 0.1, "high": 0.01}}))],
        "params.lr: low 0.1 is greater than high 0.01",
    ),
    "empty choices": (
        lambda t: ["run", _space(t, tiny_space(params={"hidden_dims": {"choices": []}}))],
        "params.hidden_dims.choices: List should have at least 1 item",
    ),
    "dropout >= 1": (
        lambda t: ["run", _space(t, tiny_space(params={"dropout": 1.0}))],
        "dropout: 1.0 must be in [0, 1)",
    ),
    "zero width": (
        lambda t: ["run", _space(t, tiny_space(params={"hidden_dims": [16, 0]}))],
        "hidden_dims: [16, 0] must be a non-empty list of positive integers",
    ),
    "activation": (
        lambda t: ["run", _space(t, tiny_space(params={"activation": "swish"}))],
        "activation: unknown 'swish'",
    ),
    "model_type": (
        lambda t: ["run", _space(t, tiny_space(model_type="gpt"))],
        "model_type: unknown model_type 'gpt'; searchable: group_mean, knn, mf, mlp",
    ),
    "pruner": (
        lambda t: ["run", _space(t, tiny_space(search={"pruner": {"type": "asha"}}))],
        "search.pruner.type: Input should be 'median'",
    ),
    "sampler": (
        lambda t: ["run", _space(t, tiny_space(search={"sampler": {"type": "cmaes"}}))],
        "search.sampler.type: Input should be 'tpe', 'random' or 'nsga2'",
    ),
    "gpu > 1": (
        lambda t: ["run", _space(t, tiny_space(resources={"gpu": 2}))],
        "resources.gpu: Input should be less than or equal to 1",
    ),
    "gpu <= 0": (
        lambda t: ["run", _space(t, tiny_space(resources={"gpu": -0.5}))],
        "resources.gpu: Input should be greater than 0",
    ),
    "metric": (
        lambda t: ["run", _space(t, tiny_space(search={"metric": "acc"}))],
        "search.metric: unknown metric 'acc'",
    ),
    "swapped modes": (
        lambda t: [
            "run",
            _space(
                t, tiny_space(search={"metric": ["val_route_acc", "param_count"], "mode": ["min", "max"]})
            ),
        ],
        "search.mode[0]: min for val_route_acc, which is better max (a swapped list?)",
    ),
    "pick twice": (
        lambda t: [
            "run",
            _space(t, tiny_space(search={"metric": ["val_route_acc", "param_count"]})),
            "--pick",
            "val_route_acc=1,val_route_acc=0",
        ],
        "--pick: val_route_acc is given twice",
    ),
    "mlflow not a uri": (
        lambda t: ["run", _space(t, tiny_space()), "--mlflow", "::::"],
        "--mlflow '::::': neither a tracking URI",
    ),
    "missing space": (lambda t: ["run", str(t / "nope.yaml")], "nope.yaml: file not found"),
    "missing data": (
        lambda t: ["run", _space(t, tiny_space()), "--data", str(t / "nodata")],
        "nodata: data folder not found",
    ),
    "bad synthetic": (
        lambda t: ["run", _space(t, tiny_space()), "--data", "synthetic:n_models=1"],
        "synthetic n_models must be an integer from 2 to 100,000, got 1",
    ),
    "embedding dim": (
        lambda t: ["run", _space(t, tiny_space(data={"synthetic": {"dim": 16}, "embedding_dim": 768}))],
        "data.embedding_dim: embedding_dim is 768 but the data",
    ),
    "label 2": (
        lambda t: ["run", _space(t, tiny_space()), "--data", _data(t, _set_label)],
        "train.csv line 4: label 2 is not a score in [0, 1]",
    ),
    "nan embeddings": (
        lambda t: ["run", _space(t, tiny_space()), "--data", _data(t, _nan)],
        "question_embeddings.pth row 5 (prompt_id 5): NaN or inf",
    ),
    "truncated pth": (
        lambda t: ["run", _space(t, tiny_space()), "--data", _data(t, _truncate)],
        "question_embeddings.pth: not a readable embeddings file",
    ),
    "missing column": (
        lambda t: ["run", _space(t, tiny_space()), "--data", _data(t, _drop_column)],
        "val.csv: missing column(s) prompt_id",
    ),
    "no pipeline_config": (
        lambda t: ["train", _json(t, {"model_type_": "mlp"})],
        "no 'pipeline_config' (or 'model_type') key",
    ),
    "relative storage": (
        lambda t: ["run", _space(t, tiny_space()), "--storage", "shared/runs"],
        "--storage 'shared/runs': must be an absolute path",
    ),
    "address without storage": (
        lambda t: ["run", _space(t, tiny_space()), "--address", "127.0.0.1:1"],
        "cluster runs need --storage",
    ),
    "unreachable address": (
        lambda t: [
            "run",
            _space(t, tiny_space()),
            "--address",
            "ray://127.0.0.1:1",
            "--storage",
            str(t / "st"),
        ],
        "--address ray://127.0.0.1:1: cannot connect",
    ),
    "num-samples 0": (
        lambda t: ["run", _space(t, tiny_space()), "--num-samples", "0"],
        "--num-samples must be from 1 to 1,000,000, got 0",
    ),
    "num-samples text": (
        lambda t: ["run", _space(t, tiny_space()), "--num-samples", "x"],
        "argument --num-samples: invalid int value: 'x'",
    ),
    "unknown flag": (lambda t: ["run", _space(t, tiny_space()), "--fast"], "unrecognized arguments: --fast"),
    "resume nothing": (
        lambda t: ["run", _space(t, tiny_space()), "--resume", "--out", str(t / "r")],
        "holds no run (study.journal not found)",
    ),
    "train epochs 0": (
        lambda t: ["train", _json(t, json.loads(GOOD_CONFIG)), "--epochs", "0"],
        "--epochs must be an integer from 1 to 100,000, got 0",
    ),
    "train bad json": (lambda t: ["train", _text(t, "{oops")], "not readable JSON"),
    "report not a run": (lambda t: ["report", str(t)], "not a run dir (study.journal not found)"),
    "pack-size 0": (
        lambda t: ["run", _space(t, tiny_space()), "--pack-size", "0"],
        "--pack-size '0': must be an integer from 1 to 4096 or auto",
    ),
    "pack_size in space": (
        lambda t: ["run", _space(t, tiny_space(search={"pack_size": 0}))],
        "search.pack_size: must be an integer from 1 to 4096 or auto, got 0",
    ),
    "unpackable model with packs": (
        lambda t: [
            "run",
            _space(t, tiny_space(params={"activation": "sigmoid"})),
            "--pack-size",
            "4",
            "--data",
            "nope",
        ],
        "nope: data folder not found",
    ),
    "train configs that cannot share a pack": (
        lambda t: [
            "train",
            _named(
                t, "a.json", {"pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [8]}}}
            ),
            _named(
                t,
                "b.json",
                {"pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [8, 4]}}},
            ),
            "--data",
            "synthetic:n_questions=60,n_models=3,dim=8",
        ],
        "a.json and b.json differ in model_config.hidden_dims ([8] vs [8, 4]), which changes the model's structure",
    ),
    # -- paths the run would write, checked before anything runs ------------------------------
    "export is a folder": (
        lambda t: ["run", _space(t, tiny_space()), "--export", str(t)],
        "is a folder; give a file path, e.g.",
    ),
    "export under a file": (
        lambda t: ["run", _space(t, tiny_space()), "--export", str(t / "config.json" / "c.json")],
        "config.json is a file, not a folder",
    ),
    "export cannot be written": (
        lambda t: ["run", _space(t, tiny_space()), "--export", "/sys/router-search-config.json"],
        "cannot write in /sys",
    ),
    "out is a file": (
        lambda t: ["run", _space(t, tiny_space()), "--out", str(t / "config.json")],
        "--out " + "{t}/config.json: is a file, not a folder",
    ),
    "out under a file": (
        lambda t: ["run", _space(t, tiny_space()), "--out", str(t / "config.json" / "run")],
        "config.json is a file, not a folder",
    ),
    "storage is a file": (
        lambda t: ["run", _space(t, tiny_space()), "--storage", str(t / "config.json")],
        "--storage " + "{t}/config.json: is a file, not a folder",
    ),
    "train out is a file": (
        lambda t: ["train", _json(t, json.loads(GOOD_CONFIG)), "--out", str(t / "config.json")],
        "--out " + "{t}/config.json: is a file, not a folder",
    ),
    "convert dst is a file": (
        lambda t: ["data", "convert", "synthetic:n_questions=60", str(t / "config.json")],
        "convert DST " + "{t}/config.json: is a file, not a folder",
    ),
    "report on a file": (lambda t: ["report", str(t / "config.json")], "not a run dir"),
    # -- a model too big to train -----------------------------------------------------------
    "train a huge model": (
        lambda t: [
            "train",
            _json(
                t,
                {
                    "pipeline_config": {
                        "model_type": "mlp",
                        "model_config": {"hidden_dims": [1000000, 1000000]},
                    }
                },
            ),
            "--data",
            "synthetic:n_questions=60,n_models=3,dim=8",
        ],
        "model_config.hidden_dims [1000000, 1000000]: a mlp of 1,000,013,000,003 parameters needs 14.6 TB",
    ),
    # -- costs, budgets, metrics --------------------------------------------------------------
    "budget 0": (
        lambda t: ["run", _space(t, tiny_space()), "--budget", "0"],
        "--budget must be a cost per query > 0",
    ),
    "budget without costs": (
        lambda t: ["run", _space(t, tiny_space()), "--budget", "0.01"],
        "budget 0.01 needs data with costs",
    ),
    "val_aiq without costs": (
        lambda t: ["run", _space(t, tiny_space(search={"metric": "val_aiq"}))],
        "search.metric val_aiq needs data with costs",
    ),
    "ensemble size negative": (
        lambda t: ["run", _space(t, tiny_space(search={"ensemble": {"size": -1}}))],
        "search.ensemble.size: Input should be greater than or equal to 0",
    ),
    # -- data in other shapes -----------------------------------------------------------------
    "wide table without embeddings": (
        lambda t: ["data", "describe", _wide(t)],
        "holds no embeddings; give --embeddings FILE",
    ),
    "wide table with too few embedding rows": (
        lambda t: ["data", "describe", _wide(t), "--embeddings", _npy(t, 3)],
        "3 rows but",
    ),
    "wide table scores without threshold": (
        lambda t: ["data", "describe", _wide(t, score=1.7), "--embeddings", _npy(t, 6)],
        "a.csv line 2: a 1.7 is not a score in [0, 1]",
    ),
    "align by id without an id column": (
        lambda t: ["data", "describe", _wide(t), "--embeddings", _npy(t, 6), "--align", "id"],
        "--align id needs an id column",
    ),
    "bad split value": (
        lambda t: ["data", "describe", _wide(t, split="dev"), "--embeddings", _npy(t, 6)],
        "split 'dev' of question 0 is not one of train, val, test",
    ),
    "records not valid json": (
        lambda t: ["data", "describe", _named(t, "r.jsonl", None, '{"scores": {"a": 1}}\n{oops\n')],
        "r.jsonl line 2: not valid JSON",
    ),
    "records without scores": (
        lambda t: ["data", "describe", _named(t, "r.json", [{"question": "q", "score": 1}])],
        "record 0 has no 'scores' object",
    ),
    "built-in name misspelt": (
        lambda t: ["data", "describe", "mmlu_pro"],
        "mmlu_pro: data folder not found (or give 'synthetic', or a built-in name)",
    ),
    "train configs of one name": (
        lambda t: [
            "train",
            _named(t, "x/c.json", json.loads(GOOD_CONFIG)),
            _named(t, "y/c.json", json.loads(GOOD_CONFIG)),
        ],
        "would both write c/: give the configs distinct file names",
    ),
    "route with a missing router": (
        lambda t: ["route", str(t / "nope.pt"), _npy(t, 3)],
        "nope.pt: file not found",
    ),
    "route with a file that is no router": (
        lambda t: ["route", _named(t, "r.pt", None, "not a checkpoint"), _npy(t, 3)],
        "r.pt: not a readable router checkpoint",
    ),
    "route embeddings of another width": (
        lambda t: ["route", _router(t, dim=8), _npy(t, 3)],
        "e3.npy: 4-d embeddings, but {t}/router.pt reads 8-d ones",
    ),
    "route embeddings with NaN": (
        lambda t: ["route", _router(t), _npy(t, 3, nan=True)],
        "e3.npy row 1 (prompt_id 1): NaN or inf in the embedding",
    ),
    "route out of another format": (
        lambda t: ["route", _router(t), _npy(t, 3), "--out", "routes.txt"],
        "--out routes.txt: give a .csv or .parquet file",
    ),
    "route out is a folder": (
        lambda t: ["route", _router(t), _npy(t, 3), "--out", _folder(t, "r.csv")],
        "r.csv: is a folder; give a file path",
    ),
}


def _router(tmp: Path, dim: int = 4) -> str:
    from router_models import create_model, save_router

    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [8]}}, dim, 2)
    save_router(model, tmp / "router.pt", model_names=["a", "b"])
    return str(tmp / "router.pt")


def _folder(tmp: Path, name: str) -> str:
    (tmp / name).mkdir()
    return str(tmp / name)


def _named(tmp: Path, name: str, obj: object, text: str | None = None) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else json.dumps(obj))
    return str(path)


def _wide(tmp: Path, score: float = 1.0, split: str | None = None) -> str:
    """A wide table of 6 questions and LLMs a, b (optionally a bad score or split)."""
    lines = ["a,b" + (",split" if split else "")]
    for i in range(6):
        s = ["train", "train", "train", "train", "val", "test"][i] if split is None else split
        lines.append(f"{score if i == 0 else 1},0" + (f",{s}" if split else ""))
    return _named(tmp, "a.csv", None, "\n".join(lines) + "\n")


def _npy(tmp: Path, rows: int, nan: bool = False) -> str:
    import numpy as np

    path = tmp / f"e{rows}.npy"
    X = np.ones((rows, 4), dtype=np.float32)
    if nan:
        X[1, 2] = np.nan
    np.save(path, X)
    return str(path)


def _json(tmp: Path, obj: dict) -> str:
    return _text(tmp, json.dumps(obj))


def _text(tmp: Path, text: str) -> str:
    path = tmp / "in.json"
    path.write_text(text)
    return str(path)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def assert_one_line_error(case: tuple, tmp_path: Path, monkeypatch, capsys, limit_s: float = 10.0) -> None:
    """Run one (argv builder, fragment) case in ``tmp_path``: exit 2, one line on stderr holding
    the fragment, no traceback (nor torch's unsafe advice), nothing written, in seconds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "config.json").write_text(GOOD_CONFIG)
    build, fragment = case
    argv = build(tmp_path)
    fragment = fragment.replace("{t}", str(tmp_path))
    before = _snapshot(tmp_path)
    capsys.readouterr()
    start = time.monotonic()
    rc = main(argv)
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert "Traceback" not in err and "weights_only" not in err
    assert _snapshot(tmp_path) == before  # nothing written, config.json byte-identical
    assert elapsed < limit_s, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case: str, tmp_path: Path, monkeypatch, capsys) -> None:
    assert_one_line_error(CASES[case], tmp_path, monkeypatch, capsys)


def test_at_least_50_cases() -> None:
    assert len(CASES) >= 50


def test_cli_error_in_subprocess_has_no_traceback(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = _space(tmp_path, tiny_space(colour=1))
    proc = subprocess.run(
        [sys.executable, "-m", "search", "run", path],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr == f"error: {path}: colour: unknown key\n"
    assert not (tmp_path / "runs").exists()


def test_debug_shows_traceback(tmp_path: Path) -> None:
    from search.errors import SpaceError

    path = _space(tmp_path, tiny_space(colour=1))
    with pytest.raises(SpaceError):
        main(["run", path, "--debug"])


def test_packs_of_a_model_that_cannot_pack(tmp_path: Path, monkeypatch, capsys) -> None:
    from torch import nn

    from router_models import BaseModel, register_model
    from router_models.model_factory import unregister_model
    from search.driver.plan import resolve_pack_size

    class Scaled(BaseModel):
        def __init__(
            self, input_dim: int, hidden_dims: list[int], output_dim: int, dropout: float = 0.1
        ) -> None:
            super().__init__(input_dim, hidden_dims, output_dim, dropout)
            self.hidden_layers = nn.ModuleList([nn.Linear(input_dim, hidden_dims[0])])
            self.scale = nn.Parameter(torch.ones(1))
            self.head = nn.Linear(hidden_dims[0], output_dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.hidden_layers[0](x)) * self.scale

    monkeypatch.chdir(tmp_path)
    register_model("scaled")(Scaled)
    try:
        rc = main(["run", _space(tmp_path, tiny_space(model_type="scaled")), "--pack-size", "4"])
    finally:
        unregister_model("scaled")
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "pack_size 4: model_type 'scaled' cannot be packed: the model itself holds scale" in err
    assert not (tmp_path / "runs").exists()
    # auto falls back to one trial per pack for such a model; else at most 8 (CPU) or 64 (GPU),
    # evened out over the slots: 24 trials on 2 slots are 4 packs of 6, not 8 + 8 + 8
    assert resolve_pack_size("auto", False, False, 100, 2) == 1
    assert resolve_pack_size("auto", False, True, 100, 2) == 8
    assert resolve_pack_size("auto", True, True, 100, 2) == 50
    assert resolve_pack_size("auto", True, True, 24, 2) == 12
    assert resolve_pack_size("auto", False, True, 24, 2) == 6
    assert resolve_pack_size(3, True, True, 24, 2) == 3


def test_debug_shows_the_cause_of_a_user_error(tmp_path) -> None:
    from router_models import ConfigError
    from search.cli.main import main

    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match="file not found") as exc:
        main(
            [
                "train",
                str(missing),
                "--data",
                "synthetic:n_questions=60",
                "--out",
                str(tmp_path / "o"),
                "--debug",
            ]
        )
    assert isinstance(exc.value.__cause__, FileNotFoundError)
