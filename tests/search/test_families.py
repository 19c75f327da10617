"""The new families in the search: priors (task, cluster, none) and fitted routers (kNN, group
means) trained by the trainer, packed, completed from the data, and searched by a space."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from router_models import ConfigError
from search import metrics as M
from search.data import load_data
from search.errors import SpaceError
from search.routing.inference import split_logits
from search.space import parse_space
from search.trial.config import complete_config
from search.trial.packable import pack_key
from search.trial.train import train_pack, train_router
from tests.conftest import TINY_SYNTH


@pytest.fixture(scope="module")
def data():
    base = load_data(TINY_SYNTH)
    tasks = (np.arange(len(base.X)) % 3).astype(np.int32)
    return dataclasses.replace(base, tasks=tasks, task_names=["a", "b", "c"])


def cfg(model_type: str, epochs: int = 2, **model_config: object) -> dict:
    if model_type in ("mlp", "residual_mlp", "mf"):
        model_config.setdefault("hidden_dims", [16])
    return {
        "pipeline_config": {
            "model_type": model_type,
            "model_config": model_config,
            "train_config": {"epochs": epochs, "batch_size": 32},
        }
    }


@pytest.mark.parametrize("prior", ["none", "task", "cluster"])
@pytest.mark.parametrize("model_type", ["mlp", "mf", "knn", "group_mean"])
def test_every_family_trains_with_every_prior(model_type, prior, data) -> None:
    extra = {"clusters": 4} if prior == "cluster" else {}
    result = train_router(cfg(model_type, prior=prior, **extra), data, metric="val_route_acc")
    model = result.model
    assert model is not None
    fitted = model_type in ("knn", "group_mean")
    assert result.epochs_run == (1 if fitted else 2)
    assert result.train_config["epochs"] == (1 if fitted else 2)
    logits = split_logits(model, data, "val")
    _, y, m = data.split("val")
    assert M.route_acc(logits, y, m) == pytest.approx(result.best_value)
    if prior == "task":  # the data's tasks, filled in, and read at routing
        assert model.model_config()["task_names"] == ["a", "b", "c"]


def test_a_task_prior_needs_tasks_and_clusters_need_questions(data) -> None:
    bare = dataclasses.replace(data, tasks=None, task_names=None)
    with pytest.raises(ConfigError, match="prior: 'task' needs data with tasks; .* has none"):
        complete_config(cfg("mlp", prior="task"), bare)
    with pytest.raises(ConfigError, match="clusters: 9999 clusters, but the data has 160 train questions"):
        complete_config(cfg("mlp", prior="cluster", clusters=9999), data)
    done = complete_config(cfg("knn", prior="task"), data)["pipeline_config"]["model_config"]
    assert done["task_names"] == ["a", "b", "c"] and done["references"] == len(data.splits["train"])


def test_fitted_trials_share_a_pack_each_on_its_own(data) -> None:
    configs = [cfg("knn", k=k) for k in (1, 5, 50)]
    keys = {pack_key(complete_config(c, data), {"epochs": 2, "batch_size": 32}, 16, 6) for c in configs}
    assert len(keys) == 1  # any knn trials may share a pack
    results = train_pack(configs, data, seeds=[0, 1, 2], metric="val_route_acc")
    _, y, m = data.split("val")
    for c, r in zip(configs, results):
        alone = train_router(c, data, metric="val_route_acc")
        assert r.best_value == pytest.approx(alone.best_value)
        assert torch.equal(split_logits(r.model, data, "val"), split_logits(alone.model, data, "val"))


def test_a_pack_of_routers_with_a_prior_trains_each_as_alone(data) -> None:
    configs = [cfg("mlp", prior="task", group_input=True, dropout=0.0) for _ in range(2)]  # no random masks
    for c, lr in zip(configs, (1e-3, 3e-3)):
        c["pipeline_config"]["train_config"]["lr"] = lr
    # one seed: the first member's also seeds the batch order a pack shares
    packed = train_pack(configs, data, seeds=[0, 0], metric="val_loss", pad=True)
    x, tasks = torch.from_numpy(data.X[:6]), torch.from_numpy(data.tasks[:6]).long()
    for c, r in zip(configs, packed):
        alone = train_pack([c], data, seeds=[0], metric="val_loss")[0]
        # fused kernels round otherwise than a lone router's: alike, not bit for bit
        for mine, own in zip(r.history, alone.history):
            assert mine["val_loss"] == pytest.approx(own["val_loss"], abs=1e-3)
        torch.testing.assert_close(r.model(x, tasks), alone.model(x, tasks), atol=1e-3, rtol=1e-3)


def _space(**params: object) -> dict:
    return {
        "model_type": {"choices": ["mlp", "knn"]},
        "params": {"lr": 1e-3, **params},
        "models": {"mlp": {"hidden_dims": [8]}, "knn": {"k": {"low": 1, "high": 50}}},
    }


def test_a_space_without_tasks_in_the_data_leaves_task_out_of_the_prior_choices() -> None:
    space = parse_space(_space(prior={"choices": ["none", "task", "cluster"]}))
    same, note = space.for_data(True)
    assert same is space and note is None
    other, note = space.for_data(False, "data.json")
    assert other.params["prior"].choices == ["none", "cluster"]
    assert note == "data.json has no tasks, so params.prior leaves out 'task'"
    assert "prior" in other.distributions("mlp") and other.distributions("mlp")["prior"].choices == (
        "none",
        "cluster",
    )
    only = parse_space(_space(prior="task"))
    with pytest.raises(ValueError, match="params.prior: 'task' needs data with tasks; data.json has none"):
        only.for_data(False, "data.json")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"prior": "topic"}, "prior: unknown 'topic'; valid: none, task, cluster"),
        ({"prior": {"choices": ["none", "clusters"]}}, "prior: unknown 'clusters'"),
        ({"clusters": {"low": 0, "high": 8}}, "clusters: 0 must be an integer from 1 to 4,096"),
        ({"prior_strength": -1.0}, "prior_strength: -1.0 must be a number >= 0"),
        ({"task_names": ["a"]}, "params.task_names: unknown key 'task_names'"),
    ],
)
def test_prior_params_are_checked_in_the_space(params, message) -> None:
    with pytest.raises(SpaceError, match=message):
        parse_space(_space(**params))


def test_knn_params_are_checked_and_it_needs_no_hidden_dims() -> None:
    raw = _space()
    raw["models"]["knn"] = {"weighting": {"choices": ["uniform", "cosine"]}}
    with pytest.raises(SpaceError, match="weighting: unknown 'cosine'; valid: uniform, similarity"):
        parse_space(raw)
    raw["models"]["knn"] = {"references": 10}
    with pytest.raises(SpaceError, match="models.knn.references: unknown key 'references'"):
        parse_space(raw)
    space = parse_space({"model_type": "group_mean", "params": {"prior": {"choices": ["none", "task"]}}})
    config = space.trial_config({"prior": "task"})["pipeline_config"]
    assert config["model_type"] == "group_mean" and config["model_config"] == {"prior": "task"}
