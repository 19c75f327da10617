"""Every registered model is tested here for free: the tests loop over list_models()."""

from __future__ import annotations

import inspect
import json

import pytest
import torch
from torch import nn

import router_models
from router_models import (
    ACTIVATIONS,
    INIT_METHODS,
    BaseModel,
    ConfigError,
    create_model,
    get_model_class,
    list_models,
    load_router,
    register_model,
    save_router,
)
from router_models.model_factory import unregister_model

EMB, N_LLM = 24, 7


def build(model_type: str, **overrides: object) -> BaseModel:
    cfg = {"hidden_dims": [16, 8], "dropout": 0.1, "activation": "relu", **overrides}
    if not get_model_class(model_type).requires_hidden:  # knn, group_mean: no hidden layers
        cfg.pop("hidden_dims")
    return create_model({"model_type": model_type, "model_config": cfg}, EMB, N_LLM)


SEARCHABLE = [m for m in list_models() if get_model_class(m).searchable and not get_model_class(m).fitted]


@pytest.fixture(params=SEARCHABLE)
def model_type(request: pytest.FixtureRequest) -> str:
    """Every registered model a search builds from hidden_dims, dropout and activation and trains
    by gradient steps (an ensemble is assembled from trained routers:
    tests/router_models/test_ensemble.py; fitted models, kNN and group means, have their own
    loop: tests/router_models/test_priors.py)."""
    return request.param


def test_readme_config_examples_build_both_models() -> None:
    for model_type, extra in (("mlp", {}), ("residual_mlp", {"num_blocks": 2})):
        cfg = {
            "pipeline_config": {
                "model_type": model_type,
                "model_config": {
                    "hidden_dims": [512, 256, 128],
                    "output_dim": 112,
                    "dropout": 0.1,
                    "activation": "relu",
                    **extra,
                },
            }
        }
        model = create_model(cfg, embedding_dim=768, num_models=112)
        assert model(torch.randn(5, 768)).shape == (5, 112)


def test_output_shape_and_finite(model_type: str) -> None:
    model = build(model_type)
    out = model(torch.randn(6, EMB))
    assert out.shape == (6, N_LLM)
    assert torch.isfinite(out).all()


def test_model_info(model_type: str) -> None:
    model = build(model_type)
    info = model.get_model_info()
    assert info["model_type"] == model_type
    assert info["class_name"] == type(model).__name__
    assert (info["input_dim"], info["hidden_dims"], info["output_dim"]) == (EMB, [16, 8], N_LLM)
    assert info["total_parameters"] == sum(p.numel() for p in model.parameters())
    assert info["trainable_parameters"] == info["total_parameters"]
    assert info["model_size_mb"] > 0
    json.dumps(info)


def test_count_parameters_and_freeze_stops_gradients(model_type: str) -> None:
    model = build(model_type)
    total = model.count_parameters()
    model.freeze_parameters()
    assert model.count_parameters(trainable_only=True) == 0
    assert model.count_parameters() == total
    out = model(torch.randn(3, EMB))
    assert not out.requires_grad
    model.freeze_parameters(False)
    model(torch.randn(3, EMB)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_get_embeddings_every_layer(model_type: str) -> None:
    model = build(model_type).eval()
    x = torch.randn(4, EMB)
    assert model.get_embeddings(x, 0).shape == (4, 16)
    assert model.get_embeddings(x, -1).shape == (4, 8)
    assert torch.equal(model.get_embeddings(x, 1), model.get_embeddings(x, -1))
    with pytest.raises(IndexError, match=r"layer_idx 2 out of range: valid is -2 to 1"):
        model.get_embeddings(x, 2)
    with pytest.raises(IndexError, match="valid is -2 to 1"):
        model.get_embeddings(x, -3)


def test_layer_weights_round_trip(model_type: str) -> None:
    model = build(model_type)
    weights = model.get_layer_weights("head")
    assert set(weights) == {"head.weight", "head.bias"}
    new = {k: torch.full_like(v, 0.5) for k, v in weights.items()}
    model.set_layer_weights(new)
    assert torch.equal(model.get_layer_weights("head.weight")["head.weight"], new["head.weight"])
    weights["head.bias"].add_(1.0)  # a copy: the model is untouched
    assert torch.equal(model.head.bias, new["head.bias"])


def test_layer_weights_errors(model_type: str) -> None:
    model = build(model_type)
    with pytest.raises(KeyError, match=r"no layer 'nope'; valid parameter names: \[.*head.bias"):
        model.get_layer_weights("nope")
    with pytest.raises(KeyError, match=r"no parameter 'nope.weight'; valid parameter names"):
        model.set_layer_weights({"nope.weight": torch.zeros(1)})
    shape = tuple(model.head.bias.shape)
    with pytest.raises(
        ValueError, match=rf"shape mismatch for 'head.bias': expected \({shape[0]},\), got \(3,\)"
    ):
        model.set_layer_weights({"head.bias": torch.zeros(3)})


@pytest.mark.parametrize("method", INIT_METHODS)
def test_initialize_weights(model_type: str, method: str) -> None:
    torch.manual_seed(0)
    model = build(model_type)
    before = model.head.weight.detach().clone()
    model.initialize_weights(method)
    assert not torch.equal(before, model.head.weight)
    assert torch.count_nonzero(model.head.bias) == 0
    assert torch.isfinite(model(torch.randn(2, EMB))).all()


def test_initialize_weights_unknown(model_type: str) -> None:
    with pytest.raises(ValueError, match=r"unknown init method 'zeros'; valid: xavier_uniform"):
        build(model_type).initialize_weights("zeros")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_builds(model_type: str, name: str) -> None:
    model = build(model_type, activation=name)
    assert isinstance(model.get_activation_function(name), nn.Module)
    assert model(torch.randn(2, EMB)).shape == (2, N_LLM)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"hidden_dims": []}, r"hidden_dims must be a non-empty list.*got \[\]"),
        ({"hidden_dims": [16, 0]}, r"hidden_dims\[1\] must be a positive integer, got 0"),
        ({"hidden_dims": [16, 2.5]}, r"hidden_dims\[1\] must be a positive integer, got 2.5"),
        ({"hidden_dims": "16"}, r"hidden_dims must be a list of positive integers, got '16'"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\) \(1 excluded\), got 1.0"),
        ({"dropout": -0.1}, r"dropout must be in \[0, 1\).*got -0.1"),
        ({"dropout": "x"}, r"dropout must be a number in \[0, 1\), got 'x'"),
        ({"activation": "swish"}, r"unknown activation 'swish'; valid: relu, gelu, silu"),
    ],
)
def test_constructor_errors(model_type: str, override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build(model_type, **override)


def test_input_dim_checked(model_type: str) -> None:
    cls = get_model_class(model_type)
    with pytest.raises(ValueError, match="input_dim must be a positive integer, got 0"):
        cls(input_dim=0, hidden_dims=[4], output_dim=2)
    with pytest.raises(ValueError, match="output_dim must be a positive integer, got -1"):
        cls(input_dim=3, hidden_dims=[4], output_dim=-1)


def test_checkpoint_round_trip(model_type: str, tmp_path) -> None:
    model = build(model_type).eval()
    model.set_input_normalization(torch.linspace(-1, 1, EMB), torch.linspace(0.5, 2, EMB))
    names = [f"llm{i}" for i in range(N_LLM)]
    path = tmp_path / "r.pt"
    save_router(model, path, model_names=names, train_config={"lr": 1e-3}, val_auc=0.7)
    loaded, info = load_router(path)
    x = torch.randn(5, EMB)
    assert torch.equal(loaded(x), model(x))
    assert info["model_names"] == names
    assert info["metadata"] == {"val_auc": 0.7}
    assert info["config"]["pipeline_config"]["train_config"] == {"lr": 1e-3}
    assert (info["embedding_dim"], info["num_models"]) == (EMB, N_LLM)
    assert not loaded.training


def test_residual_num_blocks_shapes_network() -> None:
    model = build("residual_mlp", num_blocks=3)
    blocks = [m for m in model.modules() if type(m).__name__ == "ResidualBlock"]
    assert len(blocks) == 3 * 2
    assert model.get_model_info()["num_blocks"] == 3
    with pytest.raises(ValueError, match="num_blocks must be an integer >= 1, got 0"):
        build("residual_mlp", num_blocks=0)


def test_mlp_layer_count() -> None:
    model = build("mlp", hidden_dims=[10, 9, 8])
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [lin.out_features for lin in linears] == [10, 9, 8, N_LLM]


def test_every_subclass_in_package_is_registered() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(router_models.__path__):
        importlib.import_module(f"router_models.{info.name}")
    registered = {get_model_class(name) for name in list_models()}

    def subclasses(cls: type) -> set[type]:
        out = set(cls.__subclasses__())
        return out.union(*(subclasses(c) for c in out)) if out else out

    in_package = {
        c
        for c in subclasses(BaseModel)
        if c.__module__.startswith("router_models") and not inspect.isabstract(c)
    }
    assert in_package and in_package <= registered


def test_new_model_is_creatable_without_touching_factory() -> None:
    @register_model("tiny_test_model")
    class Tiny(BaseModel):
        def __init__(self, input_dim, hidden_dims, output_dim, dropout=0.0, activation="relu", **kw):
            super().__init__(input_dim, hidden_dims, output_dim, dropout, activation, **kw)
            self.hidden_layers = nn.ModuleList([nn.Linear(input_dim, hidden_dims[0])])
            self.head = nn.Linear(hidden_dims[0], output_dim)

        def forward(self, x):
            return self.head(self.hidden_layers[0](x))

    try:
        assert "tiny_test_model" in list_models()
        model = create_model(
            {
                "pipeline_config": {
                    "model_type": "tiny_test_model",
                    "model_config": {"hidden_dims": [5]},
                }
            },
            EMB,
            N_LLM,
        )
        assert isinstance(model, Tiny) and model(torch.randn(2, EMB)).shape == (2, N_LLM)
        with pytest.raises(ValueError, match="'tiny_test_model' is already registered to Tiny"):
            register_model("tiny_test_model")(Tiny)
    finally:
        unregister_model("tiny_test_model")


def test_create_model_config_forms(tmp_path) -> None:
    inner = {"model_type": "mlp", "model_config": {"hidden_dims": [8]}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"pipeline_config": inner}))
    for form in ({"pipeline_config": inner}, inner, path, str(path)):
        assert create_model(form, EMB, N_LLM).output_dim == N_LLM


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"model_type": "transformer", "model_config": {"hidden_dims": [8]}},
            r"unknown model_type 'transformer'; registered: ensemble, group_mean, knn, mf, mlp, onboarded, residual_mlp",
        ),
        (
            {"model_type": "mlp", "model_config": {"hidden_dims": [8], "output_dim": 112}},
            r"output_dim is 112 but the data has 7 models",
        ),
        ({"model": "mlp"}, r"no 'pipeline_config' \(or 'model_type'\) key"),
        ({"pipeline_config": {"model_config": {}}}, r"pipeline_config: missing 'model_type'"),
        ({"model_type": "mlp", "model_config": {}}, r"missing 'hidden_dims'"),
        # a key the model does not take would be stored and have no effect: refused
        (
            {"model_type": "mlp", "model_config": {"hidden_dims": [8], "num_blocks": 2}},
            r"model_config: unknown key 'num_blocks'; valid: hidden_dims, output_dim, dropout, activation, "
            r"prior, clusters, prior_strength, group_input, task_names$",
        ),
        (
            {"model_type": "residual_mlp", "model_config": {"hidden_dims": [8], "dropuot": 0.3}},
            r"unknown key 'dropuot' \(did you mean 'dropout'\?\); valid: hidden_dims, output_dim, dropout, "
            r"activation, prior, clusters, prior_strength, group_input, task_names, num_blocks$",
        ),
    ],
)
def test_create_model_errors(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model(config, EMB, N_LLM)


def test_create_model_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        create_model(tmp_path / "missing.json", EMB, N_LLM)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json: not readable JSON"):
        create_model(bad, EMB, N_LLM)


def test_load_router_bad_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_router(tmp_path / "none.pt")
    path = tmp_path / "r.pt"
    save_router(build("mlp"), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="not a readable router checkpoint"):
        load_router(path)
    # a file a newer release wrote: said, not misread
    save_router(build("mlp"), path)
    payload = torch.load(path, weights_only=True)
    for version in (2, "1", None):
        payload["format_version"] = version
        torch.save(payload, path)
        with pytest.raises(
            ConfigError, match=f"router format {version!r}; this release reads formats 1 to 1"
        ):
            load_router(path)


def test_a_bug_inside_a_constructor_is_a_bug_not_a_config_error() -> None:
    @register_model("buggy_test_model")
    class Buggy(BaseModel):
        def __init__(self, **common):
            super().__init__(**common)
            len(5)  # a bug: TypeError from inside the constructor

        def forward(self, x):
            return x

    try:
        config = {"model_type": "buggy_test_model", "model_config": {"hidden_dims": [4]}}
        with pytest.raises(TypeError, match="has no len") as exc:
            create_model(config, EMB, N_LLM)
        assert not isinstance(exc.value, ConfigError)
        # a wrong argument is still the config's mistake, with its cause kept
        with pytest.raises(ConfigError, match="missing 'hidden_dims'"):
            create_model({"model_type": "buggy_test_model", "model_config": {}}, EMB, N_LLM)
    finally:
        unregister_model("buggy_test_model")
