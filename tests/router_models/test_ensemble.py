"""Ensembles and the routing decision."""

from __future__ import annotations

import pytest
import torch

from router_models import (
    ConfigError,
    EnsembleModel,
    create_model,
    load_router,
    margin_offsets,
    route,
    save_router,
)
from router_models.packing import NotPackable, PackedRouter

EMB, N_LLM = 10, 4
MLP = {"model_type": "mlp", "model_config": {"hidden_dims": [8], "dropout": 0.0}}
MF = {"model_type": "mf", "model_config": {"hidden_dims": [6], "noise_std": 0.1}}


def members() -> list:
    torch.manual_seed(0)
    a, b = create_model(MLP, EMB, N_LLM), create_model(MF, EMB, N_LLM)
    a.set_input_normalization(torch.full((EMB,), 0.5), torch.full((EMB,), 2.0))
    return [a.eval(), b.eval()]


def ensemble_of(models: list, weights: list[float]) -> EnsembleModel:
    config = {
        "model_type": "ensemble",
        "model_config": {
            "members": [{"model_type": m.model_type, "model_config": m.model_config()} for m in models],
            "weights": weights,
        },
    }
    ens = create_model(config, EMB, N_LLM)
    assert isinstance(ens, EnsembleModel)
    for own, member in zip(models, ens.members):
        member.load_state_dict(own.state_dict())
    return ens.eval()


def test_forward_is_the_logit_of_the_weighted_mean_probability() -> None:
    a, b = members()
    ens = ensemble_of([a, b], [3, 1])
    x = torch.randn(5, EMB)
    expected = 0.75 * torch.sigmoid(a(x)) + 0.25 * torch.sigmoid(b(x))
    torch.testing.assert_close(torch.sigmoid(ens(x)), expected, atol=1e-6, rtol=1e-5)
    assert ens.weights == [0.75, 0.25]
    info = ens.get_model_info()
    assert info["model_type"] == "ensemble" and info["members"] == ["mlp", "mf"]


def test_round_trip_through_save_load_and_create_model(tmp_path) -> None:
    ens = ensemble_of(members(), [1, 1])
    path = tmp_path / "ensemble_router.pt"
    save_router(
        ens, path, model_names=["a", "b", "c", "d"], routing={"offsets": margin_offsets(N_LLM, 2, 0.05)}
    )
    loaded, info = load_router(path)
    x = torch.randn(3, EMB)
    assert torch.equal(loaded(x), ens(x))
    assert info["config"]["pipeline_config"]["model_type"] == "ensemble"
    assert info["offsets"] == [0.0, 0.0, 0.05, 0.0]
    rebuilt = create_model(info["config"], EMB, N_LLM)  # the config alone rebuilds the structure
    assert [type(m).__name__ for m in rebuilt.members] == ["MLPModel", "MFModel"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"members": []}, "members must be a non-empty list"),
        ({"members": [MLP], "weights": [1, 2]}, "weights has 2 values for 1 members"),
        ({"members": [MLP], "weights": [0]}, r"every weight must be a number > 0, got \[0\]"),
        ({"members": [{"model_type": "nope", "model_config": {}}]}, "unknown model_type 'nope'"),
        (
            {"members": [{"model_config": {}}]},
            r"members\[0\]: config: no 'pipeline_config' \(or 'model_type'\) key",
        ),
    ],
)
def test_bad_ensembles_say_what(config: dict, message: str) -> None:
    with pytest.raises((ValueError, ConfigError), match=message):
        create_model({"model_type": "ensemble", "model_config": config}, EMB, N_LLM)


def test_an_ensemble_does_not_pack() -> None:
    with pytest.raises(NotPackable, match="cannot be packed"):
        PackedRouter([ensemble_of(members(), [1, 1]), ensemble_of(members(), [1, 1])])


def test_route_adds_offsets_to_predicted_correctness() -> None:
    logits = torch.logit(torch.tensor([[0.60, 0.70, 0.10], [0.90, 0.20, 0.95]]))
    assert route(logits).tolist() == [1, 2]
    # a margin of 0.15 on LLM 0: leave it only for an LLM better by more than 0.15
    assert route(logits, margin_offsets(3, 0, 0.15)).tolist() == [0, 0]
    assert route(logits, [0.0, 0.0, -1.0]).tolist() == [1, 0]  # a cost-like penalty
    mask = torch.tensor([[True, False, True], [False, True, False]])
    assert route(logits, mask=mask).tolist() == [0, 1]
    with pytest.raises(ValueError, match="offsets must have 3 values"):
        route(logits, [0.0, 0.0])


def test_a_router_saved_without_offsets_routes_by_plain_argmax(tmp_path) -> None:
    path = tmp_path / "r.pt"
    save_router(members()[0], path)
    _, info = load_router(path)
    assert info["offsets"] == [0.0] * N_LLM and info["routing"] == {}
    with pytest.raises(ValueError, match="routing offsets have 2 values but the model scores 4"):
        save_router(members()[0], path, routing={"offsets": [0.1, 0.2]})
