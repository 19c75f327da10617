"""Priors (task, cluster, none) on every learned family, and the fitted families (kNN, group
means): their values on hand-made data, packs, checkpoints and errors. The learned families come
from the registry, as in test_models.py."""

from __future__ import annotations

import pytest
import torch

from router_models import (
    ConfigError,
    EnsembleModel,
    GroupPrior,
    create_model,
    get_model_class,
    list_models,
    load_router,
    save_router,
)
from router_models.packing import PackedRouter
from router_models.prior import kmeans

D, M, N = 8, 4, 60
TASKS = ["a", "b", "c"]
LEARNED = [m for m in list_models() if get_model_class(m).searchable and not get_model_class(m).fitted]
FITTED = [m for m in list_models() if get_model_class(m).fitted]
PRIORS = {
    "none": {},
    "task": {"prior": "task", "task_names": TASKS},
    "cluster": {"prior": "cluster", "clusters": 3},
}


@pytest.fixture(scope="module")
def rows() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N, D, generator=gen)
    Y = (torch.rand(N, M, generator=gen) > 0.5).float()
    mask = torch.rand(N, M, generator=gen) > 0.1
    T = torch.arange(N) % 3
    return X, Y, mask, T


def build(model_type: str, **config: object) -> torch.nn.Module:
    cfg = dict(config)
    if get_model_class(model_type).requires_hidden:
        cfg.setdefault("hidden_dims", [6])
    return create_model({"model_type": model_type, "model_config": cfg}, D, M)


def test_task_prior_table_is_each_tasks_mean_shrunk_toward_the_overall_mean() -> None:
    X = torch.randn(6, D)
    Y = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.5]])
    mask = torch.tensor([[True, True], [True, True], [True, True], [True, True], [True, True], [False, True]])
    T = torch.tensor([0, 0, 0, 1, 1, 1])
    overall = torch.tensor([3 / 5, 3.5 / 6])
    for strength in (0.0, 2.0):
        prior = GroupPrior("task", 2, 2, D, strength)
        prior.fit(X, Y, mask, T)
        hits = torch.tensor([[2.0, 1.0], [1.0, 2.5]])
        seen = torch.tensor([[3.0, 3.0], [2.0, 3.0]])
        expected = (hits + strength * overall) / (seen + strength)
        assert torch.allclose(prior.table, expected)
    # a group with no observed score of an LLM takes its overall mean (strength 0)
    prior = GroupPrior("task", 3, 2, D, 0.0)
    prior.fit(X, Y, mask, T)
    assert torch.allclose(prior.table[2], overall)


def test_groups_are_the_given_task_or_the_nearest_centroid(rows) -> None:
    X, Y, mask, T = rows
    prior = GroupPrior("task", 3, M, D, 1.0)
    prior.fit(X, Y, mask, T)
    centroids = prior.centroids
    assert torch.allclose(centroids.norm(dim=1), torch.ones(3), atol=1e-5)
    q = centroids * 3.0  # a query on a task's centroid is of that task
    assert prior.assign(q).tolist() == [0, 1, 2]
    assert prior.assign(q, torch.tensor([2, -1, 0])).tolist() == [2, 1, 0]
    cluster = GroupPrior("cluster", 4, M, D, 1.0)
    cluster.fit(X, Y, mask)
    assert torch.equal(cluster.centroids, kmeans(X, 4))  # seeded: the same every time
    assert torch.equal(cluster.assign(X), (torch.nn.functional.normalize(X) @ cluster.centroids.T).argmax(1))
    with pytest.raises(ValueError, match="needs each train question's task"):
        prior.fit(X, Y, mask)
    with pytest.raises(ValueError, match="k-means needs 1 <= k <= 60 rows"):
        kmeans(X, 61)


@pytest.mark.parametrize("model_type", LEARNED)
@pytest.mark.parametrize("kind", ["task", "cluster"])
def test_a_learned_router_predicts_a_residual_over_its_prior(model_type, kind, rows) -> None:
    X, Y, mask, T = rows
    model = build(model_type, **PRIORS[kind]).eval()
    model.fit(X, Y, mask, T)
    assert model.prior is not None and model.prior.kind == kind
    groups = model.prior.assign(X[:5], T[:5])
    plain = torch.nn.Module.__call__(model, X[:5])  # forward alone, standardized
    out = model(X[:5], T[:5])
    assert out.shape == (5, M)
    assert torch.allclose(out, plain + model.prior.logits(groups), atol=1e-6)
    # the prior and its settings are saved with the router, and come back
    config = model.model_config()
    assert config["prior"] == kind and ("task_names" in config) == (kind == "task")


@pytest.mark.parametrize("model_type", LEARNED)
def test_group_input_starts_at_zero_and_learns(model_type, rows) -> None:
    X, Y, mask, T = rows
    torch.manual_seed(0)
    with_input = build(model_type, group_input=True, **PRIORS["task"])
    torch.manual_seed(0)
    without = build(model_type, **PRIORS["task"])
    for m in (with_input, without):
        m.fit(X, Y, mask, T)
        m.eval()
    assert torch.allclose(with_input(X[:5], T[:5]), without(X[:5], T[:5]), atol=1e-6)
    with_input.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(with_input(X, T), Y)
    loss.backward()
    assert with_input.group_input is not None and with_input.group_input.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("model_type", LEARNED)
@pytest.mark.parametrize("kind", ["task", "cluster"])
def test_a_pack_of_routers_with_priors_reproduces_each(model_type, kind, rows) -> None:
    X, Y, mask, T = rows
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = build(model_type, group_input=True, **PRIORS[kind])
        m.fit(X, Y, mask, T)
        members.append(m.eval())
    pack = PackedRouter(members).eval()
    out = pack(X[:7], T[:7])
    for k, m in enumerate(members):
        assert torch.allclose(out[k], m(X[:7], T[:7]), atol=1e-5)
        again = build(model_type, group_input=True, **PRIORS[kind])
        again.load_state_dict(pack.member_state_dict(k))
        assert torch.equal(again.prior.table, m.prior.table)


def test_routers_whose_priors_differ_do_not_pack(rows) -> None:
    X, Y, mask, T = rows
    a, b = build("mlp", **PRIORS["task"]), build("mlp", **PRIORS["task"])
    a.fit(X, Y, mask, T)
    b.fit(X, 1 - Y, mask, T)
    with pytest.raises(ValueError, match="priors fitted apart"):
        PackedRouter([a, b])


def test_knn_votes_over_its_nearest_references_shrunk_toward_its_prior() -> None:
    X = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    Y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    mask = torch.ones(4, 2, dtype=torch.bool)
    mask[1, 1] = False
    q = torch.tensor([[1.0, 0.05]])
    model = create_model(
        {"model_type": "knn", "model_config": {"k": 2, "references": 4, "prior_strength": 0.0}}, 2, 2
    ).eval()
    model.fit(X, Y, mask)
    p = torch.sigmoid(model(q))[0]
    # neighbours 0 and 1; LLM 1 observed on neighbour 0 only
    assert torch.allclose(p, torch.tensor([1.0, 0.0]).clamp(1e-6, 1 - 1e-6), atol=1e-6)
    shrunk = create_model(
        {"model_type": "knn", "model_config": {"k": 2, "references": 4, "prior_strength": 2.0}}, 2, 2
    ).eval()
    shrunk.fit(X, Y, mask)
    overall = torch.tensor([2 / 4, 1 / 3])  # LLM 1's score on question 1 is unobserved
    expected = (torch.tensor([2.0, 0.0]) + 2 * overall) / (torch.tensor([2.0, 1.0]) + 2)
    assert torch.allclose(torch.sigmoid(shrunk(q))[0], expected, atol=1e-6)
    weighted = create_model(
        {
            "model_type": "knn",
            "model_config": {
                "k": 2,
                "references": 4,
                "prior_strength": 0.0,
                "weighting": "similarity",
                "temperature": 0.1,
            },
        },
        2,
        2,
    ).eval()
    weighted.fit(X, Y, mask)
    sims = torch.nn.functional.normalize(q) @ torch.nn.functional.normalize(X[:2]).T
    w = torch.softmax(sims[0] / 0.1, 0) * 2
    assert torch.allclose(torch.sigmoid(weighted(q))[0, 0], (w * Y[:2, 0]).sum() / w.sum(), atol=1e-5)


def test_knn_keeps_a_seeded_sample_when_the_train_split_is_larger(rows) -> None:
    X, Y, mask, T = rows
    a, b = build("knn", references=20), build("knn", references=20)
    a.fit(X, Y, mask)
    b.fit(X, Y, mask)
    assert a.keys.shape == (20, D) and torch.equal(a.keys, b.keys)
    with pytest.raises(ValueError, match="keeps 80 references but got 60 train rows"):
        build("knn", references=80).fit(X, Y, mask)


@pytest.mark.parametrize("model_type", FITTED)
@pytest.mark.parametrize("kind", ["none", "task", "cluster"])
def test_fitted_routers_have_no_parameters_and_save_what_they_fitted(
    model_type, kind, rows, tmp_path
) -> None:
    X, Y, mask, T = rows
    extra = {"references": N} if model_type == "knn" else {}
    model = build(model_type, **PRIORS[kind], **extra)
    model.fit(X, Y, mask, T)
    model.eval()
    assert model.fitted and sum(p.numel() for p in model.parameters()) == 0
    save_router(model, tmp_path / "r.pt")
    again, _ = load_router(tmp_path / "r.pt")
    assert torch.equal(again(X, T), model(X, T))


def test_group_mean_routes_each_group_to_its_best_llm(rows) -> None:
    X, Y, mask, T = rows
    model = build("group_mean", prior="task", task_names=TASKS, prior_strength=0.0)
    model.fit(X, Y, mask, T)
    y, m = Y * mask, mask.float()
    for t in range(3):
        rows_t = T == t
        means = y[rows_t].sum(0) / m[rows_t].sum(0)
        assert int(model(X[:1], torch.tensor([t])).argmax()) == int(means.argmax())


def test_an_ensemble_gives_each_member_the_tasks(rows) -> None:
    X, Y, mask, T = rows
    a = build("mlp", **PRIORS["task"])
    b = build("group_mean", **PRIORS["task"])
    for m in (a, b):
        m.fit(X, Y, mask, T)
    ens = create_model(
        {
            "model_type": "ensemble",
            "model_config": {
                "members": [{"model_type": m.model_type, "model_config": m.model_config()} for m in (a, b)]
            },
        },
        D,
        M,
    )
    assert isinstance(ens, EnsembleModel)
    for member, m in zip(ens.members, (a, b)):
        member.load_state_dict(m.state_dict())
    ens.eval()
    a.eval()
    b.eval()
    expected = (torch.sigmoid(a(X, T)) + torch.sigmoid(b(X, T))) / 2
    assert torch.allclose(torch.sigmoid(ens(X, T)), expected, atol=1e-5)
    shifted = (T + 1) % 3  # other tasks route otherwise: the tasks reached the members
    assert not torch.allclose(ens(X, T), ens(X, shifted))


@pytest.mark.parametrize(
    ("model_type", "config", "message"),
    [
        ("mlp", {"prior": "topic"}, "prior must be one of none, task, cluster, got 'topic'"),
        ("mlp", {"prior": "task"}, "prior 'task' needs task_names"),
        ("mlp", {"prior": "cluster", "clusters": 0}, "clusters must be an integer from 1 to 4096, got 0"),
        ("mlp", {"prior": "task", "task_names": ["a", "a"]}, "task_names must be a list of distinct"),
        ("mlp", {"prior_strength": -1}, "prior_strength must be a finite number >= 0, got -1"),
        ("mlp", {"group_input": "yes"}, "group_input must be true or false"),
        ("knn", {"group_input": True}, "a knn learns no input"),
        ("knn", {"k": 0}, "k must be a positive integer, got 0"),
        ("knn", {"weighting": "inverse"}, "weighting must be one of uniform, similarity"),
        ("knn", {"temperature": 0}, "temperature must be a number > 0"),
        ("knn", {"hidden_dims": [8]}, "a knn router has no hidden layers"),
        ("group_mean", {"hidden_dims": [8]}, "a group_mean router has no hidden layers"),
    ],
)
def test_prior_and_fitted_config_errors(model_type, config, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cfg = dict(config)
        if get_model_class(model_type).requires_hidden:
            cfg.setdefault("hidden_dims", [6])
        create_model({"model_type": model_type, "model_config": cfg}, D, M)
