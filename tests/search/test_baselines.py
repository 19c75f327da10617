"""The baselines as routers (single best, best per task, kNN tuned on val), the routing table's
intervals against each of them, and the recommendation chosen on val within val noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from router_models import load_router, route, save_router
from search import metrics as M
from search.data import load_data
from search.results.baselines import KNN, SINGLE_BEST, TASK_BEST, baselines, knn_baseline
from search.results.routing_table import Routed, routing_table
from search.routing.inference import split_logits
from tests.conftest import TINY_SYNTH


@pytest.fixture(scope="module")
def data():
    return load_data(TINY_SYNTH)


@pytest.fixture(scope="module")
def tasked():
    """Enough questions for val to tell routers apart, with 3 tasks (question index mod 3)."""
    data = load_data("synthetic:n_questions=1500,n_models=6,dim=16,n_topics=3,seed=3")
    tasks = (np.arange(len(data.X)) % 3).astype(np.int32)
    return dataclasses.replace(data, tasks=tasks, task_names=["a", "b", "c"])


def test_knn_with_every_neighbour_is_the_train_prior(data) -> None:
    n_train = len(data.splits["train"])
    model, _ = knn_baseline(data, grid=(n_train,), weightings=(("uniform", 0.05),))
    probs = torch.sigmoid(split_logits(model, data, "test"))
    prior = M.model_accuracy(*data.split("train")[1:])
    assert torch.allclose(probs, prior.expand_as(probs), atol=1e-5)


def test_knn_k1_copies_the_nearest_question(data) -> None:
    # a val question identical to a train question gets that question's scores
    X = data.X.copy()
    X[data.splits["val"][0]] = X[data.splits["train"][3]]
    data2 = dataclasses.replace(data, X=X)
    model, how = knn_baseline(data2, grid=(1,), weightings=(("uniform", 0.05),))
    assert how == "k=1"
    probs = torch.sigmoid(split_logits(model, data2, "val"))[0]
    q = data.splits["train"][3]
    overall = M.model_accuracy(*data.split("train")[1:])
    expected = torch.where(torch.from_numpy(data.mask[q]), torch.from_numpy(data.Y[q]), overall)
    assert torch.allclose(probs, expected.clamp(1e-6, 1 - 1e-6), atol=1e-5)


def test_knn_is_tuned_on_val_over_k_and_weighting(data) -> None:
    grid, weightings = (1, 5, 50), (("uniform", 0.05), ("similarity", 0.05))
    model, how = knn_baseline(data, grid=grid, weightings=weightings)
    _, y, m = data.split("val")
    accs = {}
    for w, t in weightings:
        for k in grid:
            other, _ = knn_baseline(data, grid=(k,), weightings=((w, t),))
            accs[(w, k)] = M.route_acc(split_logits(other, data, "val"), y, m)
    chosen = M.route_acc(split_logits(model, data, "val"), y, m)
    assert chosen == max(accs.values())
    first = next(key for key, v in accs.items() if v == chosen)  # ties: the simplest
    assert (model.weighting, model.k) == first
    assert how.startswith(f"k={first[1]}")


def test_the_baselines_route_as_the_per_task_and_single_best_rules(tasked) -> None:
    refs = {b.key: b for b in baselines(tasked)}
    assert list(refs) == [SINGLE_BEST, TASK_BEST, KNN]
    _, y_tr, m_tr = tasked.split("train")
    t_tr, t_te = tasked.split_tasks("train"), tasked.split_tasks("test")
    single = route(split_logits(refs[SINGLE_BEST].model, tasked, "test"))
    assert set(single.tolist()) == {tasked.single_best()}
    per_task = route(split_logits(refs[TASK_BEST].model, tasked, "test"))
    best = M.task_best(y_tr, m_tr, t_tr, 3)
    assert per_task.tolist() == [best[t] for t in t_te.tolist()]
    for b in refs.values():  # they route plainly
        assert b.routing["offsets"] == [0.0] * tasked.num_models


def test_a_baseline_file_routes_as_its_table_row(tasked, tmp_path) -> None:
    table = routing_table([], tasked)
    for b in baselines(tasked):
        path = tmp_path / f"{b.key}.pt"
        save_router(b.model, path, routing=b.routing, model_names=tasked.model_names)
        model, info = load_router(path)
        tasks = torch.from_numpy(tasked.split_tasks("test")).long()
        logits = model(torch.from_numpy(tasked.split("test")[0]), tasks)
        _, y, m = tasked.split("test")
        acc = M.route_acc(logits, y, m, info["offsets"])
        row = next(r for r in table.rows if r["baseline"] == b.key)
        assert acc == pytest.approx(row["route_acc"], abs=1e-7)


def test_routing_table_rows_intervals_against_every_baseline(tasked) -> None:
    _, y, m = tasked.split("test")
    _, yv, mv = tasked.split("val")
    perfect = Routed("knows", torch.from_numpy((y * 2 - 1) * 5), torch.from_numpy((yv * 2 - 1) * 5))
    noise = Routed("guesses", torch.randn(y.shape), torch.randn(yv.shape))
    table = routing_table([noise, perfect], tasked)
    names = [r["router"].split(" ")[0] for r in table.rows]
    assert names == ["guesses", "knows", "single", "best", "kNN,", "oracle"]
    knows, oracle = table.rows[1], table.rows[5]
    assert knows["route_acc"] == pytest.approx(oracle["route_acc"]) and knows["correctness_acc"] == 1.0
    for key in (SINGLE_BEST, TASK_BEST, KNN):
        assert knows[f"vs_{key}"]["verdict"] == "better" and knows[f"vs_{key}"]["low"] > 0
        assert f"vs_{key}" not in table.rows[2]  # a baseline is not compared with the others
    assert table.recommended == "knows"  # on val: significantly the best
    assert table.recommendation["kind"] == "trial"
    assert "vs best per task" in table.text and "vs kNN" in table.text and "vs single best" in table.text
    assert "val routing  test routing" in table.text
    assert "chosen on val, not on test" in table.text


def test_inside_val_noise_the_simpler_router_is_recommended(tasked) -> None:
    # a router that routes as the best baseline on val but for one val question it gets right:
    # the best on val, not significantly, so a baseline is recommended and the output says so
    alone = routing_table([], tasked)
    top = max((r for r in alone.rows if r["kind"] == "baseline"), key=lambda r: r["val_route_acc"])
    model = next(b.model for b in baselines(tasked) if b.key == top["baseline"])
    val = split_logits(model, tasked, "val")
    _, yv, mv = tasked.split("val")
    chosen = route(val, mask=torch.from_numpy(mv))
    got = torch.from_numpy(yv)[torch.arange(len(yv)), chosen]
    others = torch.from_numpy(yv * mv).sum(1)
    wrong = int(torch.nonzero((got == 0) & (others > 0))[0])
    right = int(torch.nonzero(torch.from_numpy(yv[wrong] * mv[wrong]))[0])
    val[wrong, right] = 20.0
    router = Routed("almost", split_logits(model, tasked, "test"), val)
    table = routing_table([router], tasked)
    row = next(r for r in table.rows if r["router"] == "almost")
    assert row["val_route_acc"] == pytest.approx(top["val_route_acc"] + 1 / len(yv))
    assert table.recommendation["best_on_val"] == "almost"
    assert table.recommendation["kind"] == "baseline" and table.recommended != "almost"
    assert table.recommendation["vs_best_on_val"]["high"] >= 0
    assert "a baseline: no searched router routes significantly better on val" in table.text
    assert "is not significantly better" in table.text


def test_simplest_within_noise_on_hand_made_outcomes() -> None:
    n = 400
    base = torch.zeros(n)
    base[:200] = 1.0  # 0.50
    slightly = base.clone()
    slightly[200:224] = 1.0  # wins 24 questions, loses 20: +0.01, inside the noise of 400 questions
    slightly[:20] = 0.0
    much = base.clone()
    much[200:280] = 1.0  # 0.70: far outside
    chosen, best, (diff, low, high) = M.simplest_within_noise(
        {"simple": base, "complex": slightly}, {"simple": 0, "complex": 4}
    )
    assert (chosen, best) == ("simple", "complex") and diff < 0 and low < 0 <= high
    chosen, best, _ = M.simplest_within_noise({"simple": base, "complex": much}, {"simple": 0, "complex": 4})
    assert chosen == best == "complex"
    with pytest.raises(ValueError, match="no rank for 'x'"):
        M.simplest_within_noise({"x": base}, {})


def test_the_knn_baseline_file_routes_and_serves_the_tables_decisions(tasked, tmp_path, capsys) -> None:
    import pyarrow.csv as pacsv

    from search.__main__ import main
    from search.routing.router import Router

    knn = next(b for b in baselines(tasked) if b.key == KNN)
    path = tmp_path / "knn.pt"
    save_router(knn.model, path, routing=knn.routing, **tasked.saved_with())
    X = tasked.split("test")[0]
    expected = route(split_logits(knn.model, tasked, "test")).tolist()
    np.save(tmp_path / "test.npy", X)
    assert main(["route", str(path), str(tmp_path / "test.npy"), "--out", str(tmp_path / "r.csv")]) == 0
    assert pacsv.read_csv(tmp_path / "r.csv").column("llm_index").to_pylist() == expected
    router = Router.load(path)
    assert router.route_embeddings(X) == [tasked.model_names[i] for i in expected]
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    import httpx

    from tests.search.serving import running

    with running(path) as srv:
        got = httpx.post(srv.url + "/v1/route", json={"embeddings": X[:64].tolist()}).json()
    assert [r["index"] for r in got["routes"]] == expected[:64]
