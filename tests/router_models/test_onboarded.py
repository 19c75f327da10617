"""Onboarding on every model type we ship (the registry's, an ensemble, and an onboarded router
onboarded again): the known LLMs' logits identical to the bit, the new LLM better than its mean
on the questions it was fitted on, drops, checkpoints and errors."""

from __future__ import annotations

import pytest
import torch

from router_models import ConfigError, create_model, get_model_class, list_models, load_router, save_router
from router_models.onboarded import OnboardedModel, base_logits, drop, fit_readout, onboard

D, M, N = 12, 5, 200
TASKS = ["a", "b"]


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(N, D, generator=gen)
    hard = X[:, 0] + 0.3 * torch.randn(N, generator=gen)  # one difficulty axis drives every LLM
    Y = (hard[:, None] + 0.5 * torch.randn(N, M, generator=gen) < torch.linspace(-0.5, 0.5, M)).float()
    return X, Y, torch.ones(N, M, dtype=torch.bool), torch.arange(N) % 2


def _trained(model_type: str) -> torch.nn.Module:
    """A router of ``model_type`` fitted (or briefly trained) on the data above."""
    X, Y, mask, T = _data()
    cls = get_model_class(model_type)
    cfg: dict = {"hidden_dims": [16]} if cls.requires_hidden else {}
    if model_type == "knn":
        cfg.update(prior="task", task_names=TASKS)
    if model_type == "group_mean":  # groups that say something of the questions
        cfg.update(prior="cluster", clusters=6)
    if model_type == "knn":
        cfg["references"] = N
    if model_type == "ensemble":
        cfg = {
            "members": [
                {"model_type": "mlp", "model_config": {"hidden_dims": [8]}},
                {"model_type": "group_mean", "model_config": {"prior": "cluster", "clusters": 3}},
            ],
            "weights": [2, 1],
        }
    torch.manual_seed(0)
    model = create_model({"model_type": model_type, "model_config": cfg}, D, M)
    parts = list(model.members) if model_type == "ensemble" else [model]
    for part in parts:
        part.fit(X, Y, mask, T)
        params = [p for p in part.parameters() if p.requires_grad]
        if params:
            opt = torch.optim.Adam(params, lr=0.02)
            for _ in range(60):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(part(X), Y)
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval()


TYPES = [m for m in list_models() if m != "onboarded"]


@pytest.mark.parametrize("model_type", TYPES)
def test_onboarding_keeps_known_llms_to_the_bit_and_learns_the_new_one(model_type: str, tmp_path) -> None:
    X, Y, _, T = _data()
    model = _trained(model_type)
    with torch.no_grad():
        before = model(X).clone()
    # the new LLM: about as hard a grader as LLM 1, on 64 questions
    gen = torch.Generator().manual_seed(1)
    rows = torch.randperm(N, generator=gen)[:64]
    y_new = ((X[:, 0] + 0.4 * torch.randn(N, generator=gen)) < -0.2).float()
    readout = fit_readout(base_logits(model, X[rows]), y_new[rows])
    assert readout.questions == 64
    new = onboard(model, [readout])
    assert isinstance(new, OnboardedModel) and new.output_dim == M + 1
    with torch.no_grad():
        after = new(X)
    assert torch.equal(after[:, :M], before)  # every known LLM exactly as it was
    # better than the new LLM's mean on its fitted questions (log-loss)
    p = torch.sigmoid(after[rows, M]).clamp(1e-6, 1 - 1e-6)
    y = y_new[rows]
    mean = y.mean().clamp(1e-6, 1 - 1e-6)
    fitted_loss = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    mean_loss = -(y * mean.log() + (1 - y) * (1 - mean).log()).mean()
    assert fitted_loss < mean_loss
    # saved and loaded like any router, the same logits
    path = tmp_path / "r.pt"
    save_router(new, path, model_names=[f"m{j}" for j in range(M + 1)])
    loaded, info = load_router(path)
    assert info["num_models"] == M + 1
    with torch.no_grad():
        assert torch.equal(loaded(X), after)


def test_a_task_prior_reads_tasks_through_the_onboarded_router() -> None:
    X, _, _, T = _data()
    model = _trained("knn")
    readout = fit_readout(base_logits(model, X[:40], T[:40]), (X[:40, 0] < 0).float())
    new = onboard(model, [readout])
    with torch.no_grad():
        assert torch.equal(new(X, T)[:, :M], model(X, T))


def test_onboarding_twice_appends_and_drop_removes() -> None:
    X, Y, _, _ = _data()
    model = _trained("mlp")
    r1 = fit_readout(base_logits(model, X), Y[:, 0])
    once = onboard(model, [r1])
    r2 = fit_readout(base_logits(once, X), Y[:, 1])
    twice = onboard(once, [r2])
    assert twice.output_dim == M + 2 and twice.added == 2
    with torch.no_grad():
        full = twice(X)
        assert torch.equal(full[:, : M + 1], once(X))
        dropped = drop(twice, [1, M])  # a known LLM and the first added
        assert dropped.output_dim == M
        assert torch.equal(dropped(X), full[:, [0, 2, 3, 4, M + 1]])
        plain = drop(model, [0])
        assert torch.equal(plain(X), model(X)[:, 1:])
    with pytest.raises(ValueError, match="leaves no router"):
        drop(model, list(range(M)))
    with pytest.raises(ValueError, match="output 9 is not one of the router's 5"):
        drop(model, [9])


def test_readout_is_deterministic_and_needs_two_questions() -> None:
    X, Y, _, _ = _data()
    logits = base_logits(_trained("mlp"), X)
    a, b = fit_readout(logits, Y[:, 2]), fit_readout(logits, Y[:, 2])
    assert torch.equal(a.weight, b.weight) and a.bias == b.bias
    with pytest.raises(ValueError, match="K >= 2"):
        fit_readout(logits[:1], Y[:1, 2])


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"base_outputs": 2, "added": -1}, "added must be an integer >= 0, got -1"),
        ({"base_outputs": 2, "keep": [0, 0]}, r"keep must list distinct outputs in \[0, 1\], got \[0, 0\]"),
        ({"base_outputs": 2, "keep": [0, 5]}, "keep must list distinct outputs"),
        ({"base_outputs": 2}, "base: give the trained router's config"),
    ],
)
def test_bad_onboarded_configs_say_what(config: dict, message: str) -> None:
    cfg = dict(config)
    if "base" not in cfg and message != "base: give the trained router's config":
        cfg["base"] = {"model_type": "mlp", "model_config": {"hidden_dims": [4]}}
    with pytest.raises(ConfigError, match=message):
        create_model({"model_type": "onboarded", "model_config": cfg}, D, len(cfg.get("keep", [0, 1])))
