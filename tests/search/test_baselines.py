from __future__ import annotations

import pytest
import torch

from search import metrics as M
from search.data import load_data
from search.results.baselines import format_table, knn_scores, routing_table, tune_knn
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


def test_routing_table_rows(data) -> None:
    _, y, m = data.split("test")
    perfect = (y * 2 - 1) * 5  # logits that know the answers
    rows = routing_table(torch.from_numpy(perfect), data)
    assert [r["router"].split(" ")[0] for r in rows] == ["best", "single", "kNN,", "oracle"]
    assert rows[0]["route_acc"] == pytest.approx(rows[3]["route_acc"])
    assert rows[0]["correctness_acc"] == 1.0
    text = format_table(rows)
    assert "routing acc" in text and "oracle (any model correct)" in text
