from __future__ import annotations

import pytest
import torch

from search import metrics as M
from search.data import load_data
from search.results.baselines import knn_scores, tune_knn
from search.results.routing_table import Routed, routing_table
from tests.conftest import TINY_SYNTH


@pytest.fixture(scope="module")
def data():
    return load_data(TINY_SYNTH)


def test_knn_with_every_neighbour_is_the_train_prior(data) -> None:
    n_train = len(data.splits["train"])
    scores = knn_scores(data, "test", k=n_train)
    prior = M.model_accuracy(*data.split("train")[1:])
    assert torch.allclose(scores, prior.expand_as(scores), atol=1e-6)


def test_knn_k1_copies_the_nearest_question(data) -> None:
    # a val question identical to a train question gets that question's labels
    X = data.X.copy()
    X[data.splits["val"][0]] = X[data.splits["train"][3]]
    data2 = type(data)(X, data.Y, data.mask, data.model_names, data.splits, data.source)
    scores = knn_scores(data2, "val", k=1)
    q = data.splits["train"][3]
    expected = torch.where(torch.from_numpy(data.mask[q]), torch.from_numpy(data.Y[q]), torch.tensor(0.5))
    assert torch.equal(scores[0], expected)


def test_tune_knn_picks_the_best_val_k(data) -> None:
    k = tune_knn(data, grid=(1, 5, 50))
    _, y, m = data.split("val")
    accs = {kk: M.route_acc(knn_scores(data, "val", kk), y, m) for kk in (1, 5, 50)}
    assert accs[k] == max(accs.values())


def test_routing_table_rows_intervals_and_recommendation(data) -> None:
    _, y, m = data.split("test")
    _, yv, mv = data.split("val")
    perfect = Routed("knows", torch.from_numpy((y * 2 - 1) * 5), torch.from_numpy((yv * 2 - 1) * 5))
    noise = Routed("guesses", torch.randn(y.shape), torch.randn(yv.shape))
    table = routing_table([noise, perfect], data)
    names = [r["router"].split(" ")[0] for r in table.rows]
    assert names == ["guesses", "knows", "single", "kNN,", "oracle"]
    knows, oracle = table.rows[1], table.rows[4]
    assert knows["route_acc"] == pytest.approx(oracle["route_acc"]) and knows["correctness_acc"] == 1.0
    assert knows["vs_knn"]["verdict"] == "better" and knows["vs_knn"]["low"] > 0
    assert table.recommended == "knows"  # on val
    assert table.rows[2]["correctness_acc"] is None and "vs_knn" not in table.rows[2]
    assert "95% paired bootstrap" in table.text
    assert f"recommended: knows (val routing {oracle['val_route_acc']:.4f} vs" in table.text
    assert "chosen on val, not on test" in table.text
