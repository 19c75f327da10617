from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from search.__main__ import main
from search.errors import SpaceError
from search.space import load_space, parse_space
from tests.search.spaces import tiny_space, write_space

ROOT = Path(__file__).resolve().parents[2]


def test_every_shipped_space_is_tested_here() -> None:
    assert sorted(p.name for p in (ROOT / "spaces").glob("*.yaml")) == [
        "mlp.yaml",
        "pareto.yaml",
        "residual.yaml",
        "routers.yaml",
    ]


@pytest.mark.parametrize("name", ["residual.yaml", "mlp.yaml", "pareto.yaml"])
def test_shipped_spaces_validate(name: str) -> None:
    space = load_space(ROOT / "spaces" / name)
    dists = space.distributions()
    assert {"dropout", "lr", "weight_decay", "activation"} <= set(dists)
    cfg = space.trial_config({})
    assert cfg["pipeline_config"]["model_type"] == space.model_type


def test_compact_hidden_dims_and_int_bounds_inclusive() -> None:
    space = parse_space(
        tiny_space(
            params={
                "hidden_dims": {"layers": {"low": 1, "high": 3}, "width": 256},
                "num_blocks": {"low": 1, "high": 4, "step": 3},
            },
            model_type="residual_mlp",
        )
    )
    d = space.distributions()
    assert d["hidden_layers"] == IntDistribution(1, 3)
    assert d["num_blocks"] == IntDistribution(1, 4, step=3)  # 1 and 4 both reachable
    cfg = space.trial_config({"hidden_layers": 3, "num_blocks": 4})["pipeline_config"]
    assert cfg["model_config"]["hidden_dims"] == [256, 128, 64]
    assert cfg["model_config"]["num_blocks"] == 4
    assert cfg["train_config"]["epochs"] == 4


def test_compact_without_shrink_and_fixed_values() -> None:
    space = parse_space(
        tiny_space(
            params={
                "hidden_dims": {"layers": 2, "width": {"choices": [8, 64]}, "shrink": False},
                "dropout": 0.2,
                "lr": 0.01,
            }
        )
    )
    assert set(space.distributions()) == {"hidden_width"}
    cfg = space.trial_config({"hidden_width": 64})["pipeline_config"]
    assert cfg["model_config"] == {"hidden_dims": [64, 64], "dropout": 0.2}
    assert cfg["train_config"]["lr"] == 0.01


def test_list_choices_round_trip_through_storage_form() -> None:
    space = parse_space(tiny_space())
    dist = space.distributions()["hidden_dims"]
    assert isinstance(dist, CategoricalDistribution) and dist.choices == ("[16]", "[32]")
    cfg = space.trial_config({"hidden_dims": "[32]"})
    assert cfg["pipeline_config"]["model_config"]["hidden_dims"] == [32]


def test_float_strings_like_1e_minus_4_are_numbers(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "model_type: mlp\nparams:\n  hidden_dims: [8]\n  lr: {low: 1e-4, high: 1e-2, log: true}\n"
    )
    assert load_space(path).distributions()["lr"] == FloatDistribution(1e-4, 1e-2, log=True)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (tiny_space(colour=1), r"colour: unknown key"),
        (
            tiny_space(search={"sampler": {"type": "tpe", "startup": 3}}),
            r"search.sampler.startup: unknown key",
        ),
        (
            tiny_space(params={"dropout": {"low": 0.5, "high": 0.1}}),
            r"params.dropout: low 0.5 is greater than high 0.1",
        ),
        (tiny_space(params={"dropout": {"low": 0.0, "high": 1.0}}), r"dropout: 1.0 must be in \[0, 1\)"),
        (
            tiny_space(params={"activation": {"choices": []}}),
            r"params.activation.choices: List should have at least 1 item",
        ),
        (tiny_space(params={"activation": "swish"}), r"activation: unknown 'swish'; valid: relu"),
        (tiny_space(params={"hidden_dims": [16, 0]}), r"hidden_dims: \[16, 0\] must be a non-empty list"),
        (
            tiny_space(model_type="transformer"),
            r"model_type: unknown model_type 'transformer'; searchable: group_mean, knn, mf, mlp",
        ),
        (tiny_space(search={"pruner": {"type": "asha"}}), r"search.pruner.type: Input should be 'median'"),
        (
            tiny_space(search={"sampler": {"type": "cmaes"}}),
            r"search.sampler.type: Input should be 'tpe', 'random' or 'nsga2'",
        ),
        (
            tiny_space(search={"metric": "accuracy"}),
            r"search.metric: unknown metric 'accuracy'; valid: val_loss",
        ),
        (tiny_space(resources={"gpu": 1.5}), r"resources.gpu: Input should be less than or equal to 1"),
        (tiny_space(resources={"gpu": 0}), r"resources.gpu: Input should be greater than 0"),
        (
            tiny_space(params={"lr": {"low": 0.0, "high": 0.1, "log": True}}),
            r"params.lr: log scale needs low > 0",
        ),
        (
            tiny_space(params={"epochs": {"low": 1, "high": "ten"}}),
            r"params.epochs.high: Input should be a valid integer",
        ),
        (
            tiny_space(search={"num_samples": 0}),
            r"search.num_samples: Input should be greater than or equal to 1",
        ),
        ({"params": {"hidden_dims": [8]}}, r"model_type: Field required"),
        (
            tiny_space(params={"dropout": 0.1, "hidden_dims": None}),
            r"hidden_dims: None must be a non-empty list",
        ),
        (tiny_space(data={"path": "/x", "synthetic": {}}), r"data: give either path or synthetic, not both"),
        (tiny_space(data={"synthetic": {"colour": 1}}), r"data.synthetic: unknown option\(s\) \['colour'\]"),
        (
            tiny_space(data={"synthetic": {"dim": 0}}),
            r"data.synthetic: synthetic dim must be an integer from 2 to 65,536",
        ),
    ],
)
def test_schema_errors(space: dict, message: str) -> None:
    if space.get("params", {}).get("hidden_dims", "x") is None:
        space["params"]["hidden_dims"] = None
    with pytest.raises(SpaceError, match=message):
        parse_space(space, "s.yaml")


def test_missing_hidden_dims() -> None:
    space = tiny_space()
    del space["params"]["hidden_dims"]
    with pytest.raises(SpaceError, match="params.hidden_dims is required"):
        parse_space(space, "s.yaml")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model_type: mlp\nparams: {hidden_dims: [8]\n")
    with pytest.raises(SpaceError, match=r"bad.yaml line \d+: YAML syntax error"):
        load_space(path)


def test_validate_cli(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(ROOT / "spaces" / "residual.yaml")]) == 0
    out = capsys.readouterr().out
    assert "optuna_distributions:" in out and "hidden_layers" in out
    bad = write_space(tmp_path / "s.yaml", tiny_space(colour=1))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {bad}: colour: unknown key\n"
    assert main(["validate", str(tmp_path / "none.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def _conditional(**overrides):
    raw = tiny_space(model_type={"choices": ["mlp", "mf", "residual_mlp"]}, **overrides)
    raw["params"] = {"lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}, "epochs": 3, "batch_size": 32}
    raw["models"] = {
        "mlp": {"hidden_dims": {"choices": [[16], [8, 8]]}, "dropout": {"low": 0.0, "high": 0.3}},
        "mf": {"hidden_dims": [8], "noise_std": {"low": 0.0, "high": 0.2}},
        "residual_mlp": {"hidden_dims": [8], "num_blocks": {"low": 1, "high": 2}},
    }
    return raw


def test_shipped_pareto_space_searches_two_objectives() -> None:
    search = load_space(ROOT / "spaces" / "pareto.yaml").search
    assert search.objectives == ("val_route_acc", "router_latency_ms") and search.directions == ("max", "min")


def test_shipped_routers_space_searches_every_family_and_prior() -> None:
    space = load_space(ROOT / "spaces" / "routers.yaml")
    assert space.types == ["group_mean", "knn", "mlp", "residual_mlp", "mf"] and space.conditional
    shared = {"model_type", "prior", "clusters", "prior_strength", "lr", "weight_decay"}
    assert set(space.distributions("mf")) == shared | {"mf.hidden_dims", "mf.noise_std", "mf.dropout"}
    assert set(space.distributions("knn")) == shared | {"knn.k", "knn.weighting", "knn.temperature"}
    assert set(space.distributions("group_mean")) == shared
    assert space.distributions("mlp")["prior"].choices == ("none", "task", "cluster")
    assert "mlp.group_input" in space.distributions("mlp")
    for t in space.types:
        assert space.trial_config({"model_type": t})["pipeline_config"]["model_type"] == t


def test_a_trial_samples_only_its_types_params() -> None:
    import optuna

    space = parse_space(_conditional())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        t = params["model_type"]
        seen.add(t)
        assert {k.split(".")[0] for k in params if "." in k} <= {t}  # no other type's params
        assert set(trial.distributions) == set(params)  # the study records each with its distribution
        cfg = space.trial_config(params)["pipeline_config"]
        assert cfg["model_type"] == t and cfg["train_config"]["lr"] == params["lr"]
        if t == "mf":
            assert cfg["model_config"] == {"hidden_dims": [8], "noise_std": params["mf.noise_std"]}
        study.tell(trial, 0.5)
    assert seen == {"mlp", "mf", "residual_mlp"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: r["models"]["mf"].update(noise_std=-1.0),
            "models.mf.noise_std: -1.0 must be a number >= 0",
        ),
        (
            lambda r: r["models"]["mlp"].update(dropout={"low": 0.5, "high": 0.1}),
            "models.mlp.dropout: low 0.5 is greater than high 0.1",
        ),
        (
            lambda r: r["models"]["mlp"].update(colour=1),
            r"models.mlp.colour: unknown key 'colour'; valid: hidden_dims, dropout, activation, prior, clusters, prior_strength, group_input, lr, ",
        ),
        (
            lambda r: r["models"]["residual_mlp"].update(num_blcks=2),
            r"models.residual_mlp.num_blcks: unknown key 'num_blcks' \(did you mean 'num_blocks'\?\)",
        ),
        (
            lambda r: r["params"].update(num_blocks=2),
            r"params.num_blocks: unknown key 'num_blocks' for (mlp|mf) \(params are shared by every type",
        ),
        (
            lambda r: r["models"].update(template={"hidden_dims": [8]}),
            "models.template: not a model type of this space",
        ),
        (lambda r: r["models"]["mf"].pop("hidden_dims"), "models.mf.hidden_dims is required"),
        (lambda r: r["models"]["mf"].update(lr=0.1), "models.mf.lr: also set in params"),
        (
            lambda r: r.update(model_type={"choices": ["mlp", "ensemble"]}),
            "unknown model_type 'ensemble' in choices; searchable:",
        ),
    ],
)
def test_conditional_space_errors_name_the_key_path(edit, message) -> None:
    raw = _conditional()
    edit(raw)
    with pytest.raises(SpaceError, match=message):
        parse_space(raw)
