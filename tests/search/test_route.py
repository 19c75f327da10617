"""``search route``: new queries routed with a saved router, as the routing table routes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from router_models import (
    create_model,
    get_model_class,
    list_models,
    load_router,
    margin_offsets,
    route,
    save_router,
)
from search.__main__ import main

NAMES = ["small-llm", "mid-llm", "big-llm"]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    torch.manual_seed(0)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [16]}}, 6, 3)
    routing = {"offsets": margin_offsets(3, anchor=1, margin=0.2), "rule": "margin on mid-llm"}
    path = tmp_path / "router.pt"
    save_router(model, path, model_names=NAMES, routing=routing)
    X = np.random.default_rng(0).standard_normal((200, 6)).astype(np.float32)
    np.save(tmp_path / "q.npy", X)
    return path, tmp_path / "q.npy", X


def _expected(path: Path, X: np.ndarray, plain: bool) -> tuple[torch.Tensor, torch.Tensor]:
    model, info = load_router(path)
    with torch.no_grad():
        logits = model(torch.from_numpy(X))
    return route(logits, None if plain else info["offsets"]), torch.sigmoid(logits)


def test_routes_every_query_with_the_saved_offsets(saved, tmp_path: Path, capsys) -> None:
    path, emb, X = saved
    out = tmp_path / "routes.csv"
    assert main(["route", str(path), str(emb), "--out", str(out)]) == 0
    table = pacsv.read_csv(out).to_pydict()
    choice, p = _expected(path, X, plain=False)
    assert table["query"] == list(range(200))
    assert table["llm_index"] == choice.tolist()
    assert table["llm"] == [NAMES[i] for i in choice.tolist()]
    np.testing.assert_allclose(table["predicted_correctness"], p.gather(1, choice[:, None])[:, 0], rtol=1e-5)
    text = capsys.readouterr().out
    assert f"routed 200 queries with {path} (margin on mid-llm); wrote {out}" in text
    top = max(set(table["llm"]), key=table["llm"].count)
    assert f"{top:<40} {table['llm'].count(top):>8}" in text


def test_plain_ignores_the_offsets(saved, tmp_path: Path) -> None:
    path, emb, X = saved
    main(["route", str(path), str(emb), "--out", str(tmp_path / "a.csv")])
    main(["route", str(path), str(emb), "--out", str(tmp_path / "b.csv"), "--plain"])
    with_margin = pacsv.read_csv(tmp_path / "a.csv").column("llm_index").to_pylist()
    plain = pacsv.read_csv(tmp_path / "b.csv").column("llm_index").to_pylist()
    assert plain == _expected(path, X, plain=True)[0].tolist()
    assert with_margin != plain  # the margin moved some queries to mid-llm
    assert with_margin.count(1) > plain.count(1)


def test_parquet_with_every_score_from_a_pth_file(saved, tmp_path: Path) -> None:
    path, _, X = saved
    torch.save(torch.from_numpy(X).half(), tmp_path / "q.pth")
    out = tmp_path / "deep" / "routes.parquet"
    assert main(["route", str(path), str(tmp_path / "q.pth"), "--out", str(out), "--scores"]) == 0
    table = pq.read_table(out)
    assert table.column_names == ["query", "llm", "llm_index", "predicted_correctness"] + [
        f"p|{n}" for n in NAMES
    ]
    _, p = _expected(path, torch.from_numpy(X).half().float().numpy(), plain=False)
    for j, name in enumerate(NAMES):
        np.testing.assert_allclose(table.column(f"p|{name}").to_numpy(), p[:, j], rtol=1e-5)


def test_a_router_saved_without_names_or_offsets_routes_by_index(tmp_path: Path) -> None:
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [4]}}, 3, 2)
    save_router(model, tmp_path / "r.pt")
    np.save(tmp_path / "q.npy", np.eye(3, dtype=np.float32))
    assert (
        main(["route", str(tmp_path / "r.pt"), str(tmp_path / "q.npy"), "--out", str(tmp_path / "r.csv")])
        == 0
    )
    table = pacsv.read_csv(
        tmp_path / "r.csv", convert_options=pacsv.ConvertOptions(column_types={"llm": "string"})
    )
    assert table.column("llm").to_pylist() == [str(i) for i in table.column("llm_index").to_pylist()]


def test_a_failed_route_keeps_an_earlier_routes_file(saved, tmp_path: Path, capsys) -> None:
    path, _, _ = saved
    out = tmp_path / "routes.csv"
    out.write_text("earlier\n")
    np.save(tmp_path / "wide.npy", np.zeros((4, 9), dtype=np.float32))
    assert main(["route", str(path), str(tmp_path / "wide.npy"), "--out", str(out)]) == 2
    assert "9-d embeddings, but" in capsys.readouterr().err
    assert out.read_text() == "earlier\n"


def _run_dir(tmp_path: Path, recommended: str | None) -> Path:
    """A finished run's outputs as ``search run`` names them: two routers, config.json, and
    routing.json naming the recommended one."""
    import json

    run = tmp_path / "run"
    run.mkdir()
    for seed, name in ((1, "best_router.pt"), (2, "ensemble_router.pt"), (3, "baselines/knn.pt")):
        torch.manual_seed(seed)
        model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [16]}}, 6, 3)
        save_router(model, run / name, model_names=NAMES)
    config = {
        "pipeline_config": {"model_type": "mlp", "model_config": {"hidden_dims": [16]}},
        "search_result": {
            "trial": 7,
            "ensemble": {"router": "ensemble_router.pt", "trials": [7, 9]},
            "baselines": {"knn": "kNN, cosine, k=5 (tuned on val)"},
        },
    }
    (run / "config.json").write_text(json.dumps(config))
    if recommended is not None:
        (run / "routing.json").write_text(json.dumps({"rows": [], "recommended": recommended}))
    return run


@pytest.mark.parametrize(
    ("recommended", "expected"),
    [
        ("ensemble of 2 trials", "ensemble_router.pt"),
        ("best trial 7 (mlp)", "best_router.pt"),
        ("kNN, cosine, k=5 (tuned on val)", "baselines/knn.pt"),  # a baseline is a router too
        (None, "best_router.pt"),
    ],
)
def test_a_run_dir_routes_with_its_recommended_router(
    saved, tmp_path: Path, capsys, recommended: str | None, expected: str
) -> None:
    _, emb, X = saved
    run = _run_dir(tmp_path, recommended)
    assert main(["route", str(run), str(emb), "--out", str(tmp_path / "r.csv")]) == 0
    assert pacsv.read_csv(tmp_path / "r.csv").column("llm_index").to_pylist() == (
        _expected(run / expected, X, plain=False)[0].tolist()
    )
    name = recommended or "best trial 7 (mlp)"
    assert (
        f"with {run / expected} (plain argmax (no offsets saved); the run's recommended router, {name})"
        in (capsys.readouterr().out)
    )


def test_a_folder_that_is_no_run(saved, tmp_path: Path, capsys) -> None:
    _, emb, _ = saved
    (tmp_path / "empty").mkdir()
    assert main(["route", str(tmp_path / "empty"), str(emb), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {tmp_path / 'empty'}: no config.json; give a router file (.pt) or a finished run dir\n"
    )
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(
    "model_type",
    [m for m in list_models() if get_model_class(m).searchable and not get_model_class(m).fitted],
)
def test_a_frozen_router_decides_as_the_eager_one(model_type: str, tmp_path: Path) -> None:
    """Router.freeze (what a served router runs): the same logits for every model type, any batch."""
    from search.routing.router import Router

    torch.manual_seed(1)
    cfg = {"hidden_dims": [16, 8], "dropout": 0.1, "activation": "relu"}
    save_router(create_model({"model_type": model_type, "model_config": cfg}, 6, 3), tmp_path / "r.pt")
    eager, frozen = Router.load(tmp_path / "r.pt"), Router.load(tmp_path / "r.pt")
    assert frozen.freeze() is True
    assert frozen._forward is not frozen.model
    for n in (1, 5, 300):
        X = np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)
        assert torch.allclose(frozen.logits(X), eager.logits(X), rtol=1e-5, atol=1e-6)
        assert frozen.route_embeddings(X) == eager.route_embeddings(X)


def test_route_meets_a_budget_or_a_lambda_with_the_saved_costs(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [16]}}, 6, 3)
    curve = {"lambda": [0.0, 0.1, 1.0], "val_cost": [3.0, 1.5, 0.2]}
    path = tmp_path / "costly.pt"
    routing = {"offsets": [0.0, 0.0, 0.0], "cost_curve": curve}
    save_router(model, path, model_names=NAMES, routing=routing, costs=[0.1, 1.0, 3.0])
    X = np.random.default_rng(0).standard_normal((100, 6)).astype(np.float32)
    np.save(tmp_path / "q.npy", X)
    out = tmp_path / "routes.csv"
    assert main(["route", str(path), str(tmp_path / "q.npy"), "--out", str(out), "--budget", "1.5"]) == 0
    assert "budget 1.5: lambda 0.1 by the val cost curve" in capsys.readouterr().out
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(X))
    want = route(logits, [-0.1 * c for c in (0.1, 1.0, 3.0)])
    assert pacsv.read_csv(out).column("llm_index").to_pylist() == want.tolist()
    assert main(["route", str(path), str(tmp_path / "q.npy"), "--out", str(out), "--lambda", "1.0"]) == 0
    assert pacsv.read_csv(out).column("llm_index").to_pylist() == route(logits, [-0.1, -1.0, -3.0]).tolist()
    capsys.readouterr()
    assert (
        main(
            ["route", str(path), str(tmp_path / "q.npy"), "--out", str(out), "--budget", "1", "--lambda", "1"]
        )
        == 2
    )
    assert "give a budget or a lambda, not both" in capsys.readouterr().err
    plain = tmp_path / "plain.pt"
    save_router(model, plain, model_names=NAMES)
    assert main(["route", str(plain), str(tmp_path / "q.npy"), "--out", str(out), "--budget", "1"]) == 2
    assert "knows no LLM costs" in capsys.readouterr().err


def _task_router(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """Each task's best LLM: small-llm on task a, big-llm on task b."""
    model = create_model(
        {
            "model_type": "group_mean",
            "model_config": {"prior": "task", "task_names": ["a", "b"], "prior_strength": 0},
        },
        6,
        3,
    )
    X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    Y = torch.zeros(40, 3)
    Y[:20, 0], Y[20:, 2] = 1, 1
    tasks = torch.tensor([0] * 20 + [1] * 20)
    model.fit(torch.from_numpy(X), Y, torch.ones(40, 3, dtype=torch.bool), tasks)
    path = tmp_path / "tasks.pt"
    save_router(model, path, model_names=NAMES, task_names=["a", "b"])
    np.save(tmp_path / "q.npy", X)
    return path, X


def test_a_task_prior_routes_each_query_by_its_task(tmp_path: Path, capsys) -> None:
    from search.routing.router import Router

    path, X = _task_router(tmp_path)
    for task, llm in (("a", "small-llm"), ("b", "big-llm")):
        out = tmp_path / f"{task}.csv"
        assert main(["route", str(path), str(tmp_path / "q.npy"), "--task", task, "--out", str(out)]) == 0
        assert set(pacsv.read_csv(out).column("llm").to_pylist()) == {llm}
        assert "40 of 40 queries with a task" in capsys.readouterr().out
    router = Router.load(path)
    assert router.reads_tasks and router.task_names == ["a", "b"]
    assert router.route_embeddings(X[:3], tasks=["a", None, "b"])[::2] == ["small-llm", "big-llm"]
    # without a task, a query takes the task whose train centroid is nearest
    nearest = router.model.prior.assign(torch.from_numpy(X[:5])).tolist()
    assert router.route_embeddings(X[:5]) == [["small-llm", "big-llm"][g] for g in nearest]
    assert (
        main(
            ["route", str(path), str(tmp_path / "q.npy"), "--task", "poems", "--out", str(tmp_path / "x.csv")]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "task 'poems' is not one of the router's tasks (a, b)" in err
    assert not (tmp_path / "x.csv").exists()


def test_a_task_given_to_a_router_without_a_task_prior_is_said(saved, tmp_path: Path, capsys) -> None:
    path, emb, X = saved
    assert main(["route", str(path), str(emb), "--task", "a", "--out", str(tmp_path / "r.csv")]) == 2
    assert (
        "task 'a' is not one of the router's tasks (none: its data had no tasks)" in capsys.readouterr().err
    )


def test_prompts_files_carry_each_records_task(tmp_path: Path) -> None:
    from search.data.prompts import read_prompts

    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"prompt": "one", "task": "a"}\n{"prompt": "two"}\n{"prompt": "three", "category": "b"}\n'
    )
    tasks: list[str | None] = []
    assert read_prompts(path, None, tasks) == ["one", "two", "three"]
    assert tasks == ["a", None, "b"]


@pytest.fixture(scope="module")
def text_router(tmp_path_factory) -> Path:
    from tests.search.encoders import make_encoder
    from tests.search.serving import make_router

    pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
    encoder = make_encoder(tmp_path_factory.mktemp("enc"), seed=0, dim=16, max_seq_length=16)
    return make_router(tmp_path_factory.mktemp("router") / "router.pt", encoder)


def test_texts_are_routed_with_their_text_and_an_empty_one_is_refused(text_router, tmp_path, capsys) -> None:
    from search.routing.router import Router

    out = tmp_path / "r.csv"
    texts = ["what is the sum", "write a poem"]
    assert main(["route", str(text_router), "--text", texts[0], "--text", texts[1], "--out", str(out)]) == 0
    table = pacsv.read_csv(out).to_pylist()
    assert [r["text"] for r in table] == texts
    assert [r["llm"] for r in table] == Router.load(text_router).route(texts)
    said = capsys.readouterr().out
    assert f"what is the sum{' ' * 49} -> {table[0]['llm']}" in said
    for bad in ("", "   "):
        assert (
            main(["route", str(text_router), "--text", "ok", "--text", bad, "--out", str(tmp_path / "x.csv")])
            == 2
        )
        err = capsys.readouterr().err
        assert err == "error: --text 2: the prompt is empty\n"
    with pytest.raises(Exception, match="text 1: the prompt is empty"):
        Router.load(text_router).route(["fine", " "])


def test_a_prompts_file_is_routed_as_a_stream_in_batches(text_router, tmp_path, capsys, monkeypatch) -> None:
    import json

    import search.cli.route as route_cli
    from search.routing.router import Router

    monkeypatch.setattr(route_cli, "BATCH", 7)
    texts = [f"what is the sum of {i}" for i in range(30)]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    out = tmp_path / "r.csv"
    assert main(["route", str(text_router), "--prompts", str(path), "--out", str(out)]) == 0
    assert pacsv.read_csv(out).column("llm").to_pylist() == Router.load(text_router).route(texts)
    captured = capsys.readouterr()
    assert f"routing 30 prompts from {path}" in captured.out and "prompts/s on this machine" in captured.out
    assert "28 of 30 routed" in captured.err  # batch by batch
    path.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps({"prompt": "  "}) + "\n")
    assert main(["route", str(text_router), "--prompts", str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {path} line 2: the prompt is empty\n"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("zero.txt", "not a regular file (a device or a pipe)"),  # a name for /dev/zero
        ("fifo.jsonl", "not a regular file (a device or a pipe)"),
        ("prompts.xml", "a prompts file is a .txt, .jsonl, .json, .csv, .parquet file"),
        ("missing.jsonl", "file not found"),
    ],
)
def test_prompts_that_are_not_a_file_are_one_line_at_once(
    text_router, tmp_path, capsys, name, message
) -> None:
    import os

    path = str(tmp_path / name)
    if name.endswith(".xml"):
        Path(path).write_text("<x/>")
    elif name == "zero.txt":
        os.symlink("/dev/zero", path)
    elif name == "fifo.jsonl":
        os.mkfifo(path)
    assert main(["route", str(text_router), "--prompts", path, "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_json_prompts_file_over_its_limit_is_refused(tmp_path, monkeypatch) -> None:
    import search.data.prompts as prompts
    from search.errors import DataError

    monkeypatch.setattr(prompts, "MAX_JSON_BYTES", 100)
    path = tmp_path / "p.json"
    path.write_text('["' + "x" * 200 + '"]')
    with pytest.raises(
        DataError, match="may be at most 100 bytes \\(use .jsonl, read as a stream, for more\\)"
    ):
        prompts.check_file(path)
