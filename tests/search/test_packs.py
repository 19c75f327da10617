"""Packs in the trainer: a member trains as it would alone; members fail, stop and leave alone."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from router_models import ConfigError, get_model_class, list_models
from search.data import load_data
from search.driver.packer import Packer
from search.space import parse_space
from search.trial.optim import PackedAdamW
from search.trial.packable import incompatibility
from search.trial.train import EpochReport, train_pack, train_router
from search.trial.train_config import resolve_train_config
from tests.search.spaces import tiny_space

DATA = "synthetic:n_questions=400,n_models=8,dim=16,n_topics=4,seed=5"


def cfg(model_type: str = "mlp", hidden=(16, 8), act="relu", dropout=0.0, lr=1e-2, wd=1e-2, epochs=4, bs=32):
    model: dict = {"hidden_dims": list(hidden), "activation": act, "dropout": dropout}
    if model_type == "residual_mlp":
        model["num_blocks"] = 1
    return {
        "pipeline_config": {
            "model_type": model_type,
            "model_config": model,
            "train_config": {"lr": lr, "weight_decay": wd, "batch_size": bs, "epochs": epochs},
        }
    }


@pytest.fixture(scope="module")
def data():
    return load_data(DATA)


@pytest.mark.parametrize("pad", [True, False], ids=["padded", "grouped"])
@pytest.mark.parametrize(
    "model_type",
    [m for m in list_models() if get_model_class(m).searchable and not get_model_class(m).fitted],
)
def test_member_of_a_pack_trains_as_it_would_alone(data, model_type: str, pad: bool) -> None:
    alone = train_router(cfg(model_type), data, seed=11, metric="val_auc")
    # Padded (a GPU's packs): all four fused, zero-padded to the widest. Grouped (a CPU's): the
    # two of equal shapes fused, the others each in a group of its own.
    pack = train_pack(
        [
            cfg(model_type, hidden=(32, 4), act="gelu", lr=3e-3, wd=0.0),
            cfg(model_type),
            cfg(model_type, hidden=(8, 16), act="silu", lr=5e-2, wd=0.1),
            cfg(model_type, act="gelu", lr=2e-3, wd=0.05),
        ],
        data,
        seeds=[11, 11, 11, 11],
        metric="val_auc",
        pad=pad,
    )
    member = pack[1]
    assert [r.status for r in pack] == ["complete"] * 4
    assert len(member.history) == len(alone.history) == 4
    for mine, own in zip(member.history, alone.history):
        for key, value in own.items():
            assert mine[key] == pytest.approx(value, abs=1e-3), (key, mine["epoch"])
    assert member.best_epoch == alone.best_epoch
    x = torch.from_numpy(data.X[:6])
    torch.testing.assert_close(member.model(x), alone.model(x), atol=1e-3, rtol=1e-3)


def test_packed_adamw_is_torch_adamw_per_member() -> None:
    torch.manual_seed(0)
    lrs, wds = [1e-2, 2e-3, 5e-2], [0.1, 0.0, 0.01]
    packed = torch.nn.Parameter(torch.randn(3, 5, 4))
    fused = PackedAdamW([packed], lrs, wds)
    vector_param = torch.nn.Parameter(packed.detach().clone())
    vector = PackedAdamW([vector_param], lrs, wds)
    # Like with like: each member alone under torch's fused CPU AdamW, the kernel the pack runs
    # per member, and under torch's default (loop) AdamW, whose arithmetic is the same up to
    # rounding: on AVX512 machines the two kernels differ by an ulp in some elements.
    fused_alone = [torch.nn.Parameter(packed.detach()[k].clone()) for k in range(3)]
    loop_alone = [torch.nn.Parameter(packed.detach()[k].clone()) for k in range(3)]
    fused_opts = [
        torch.optim.AdamW([p], lr=lr, weight_decay=wd, fused=True) for p, lr, wd in zip(fused_alone, lrs, wds)
    ]
    loop_opts = [
        torch.optim.AdamW([p], lr=lr, weight_decay=wd, foreach=False)
        for p, lr, wd in zip(loop_alone, lrs, wds)
    ]
    for _ in range(10):
        g = torch.randn(3, 5, 4)
        packed.grad, vector_param.grad = g.clone(), g.clone()
        fused.step()
        with torch.no_grad():  # the GPU path, run here on CPU tensors
            vector.steps += 1
            vector._vector_step([vector_param], [(vector.exp_avg[0], vector.exp_avg_sq[0])])
        for k in range(3):
            fused_alone[k].grad, loop_alone[k].grad = g[k].clone(), g[k].clone()
            fused_opts[k].step()
            loop_opts[k].step()
    for k in range(3):
        assert torch.equal(packed[k], fused_alone[k])  # the same kernel on the same values: bit for bit
        # 10 steps of float32 rounding differences between kernels stay within a few ulps
        torch.testing.assert_close(packed[k], loop_alone[k], atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(vector_param[k], loop_alone[k], atol=1e-6, rtol=1e-6)


def test_packed_adamw_rejects_bad_values() -> None:
    p = torch.nn.Parameter(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"every lr must be > 0, got \[0.1, 0.0\]"):
        PackedAdamW([p], [0.1, 0.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="one lr and one weight_decay per member, got 2 and 1"):
        PackedAdamW([p], [0.1, 0.1], [0.0])
    with pytest.raises(ValueError, match=r"shape \(2, 3\) does not hold 3 members"):
        PackedAdamW([p], [0.1] * 3, [0.0] * 3)


def test_a_diverging_member_fails_alone(data) -> None:
    results = train_pack([cfg(), cfg(lr=1e30), cfg(hidden=(8, 8))], data, seeds=[1, 2, 3])
    assert [r.status for r in results] == ["complete", "failed", "complete"]
    assert (
        results[1].model is None
        and "TrainingDiverged: training loss became nan at epoch 1" in results[1].error
    )
    for r in (results[0], results[2]):
        assert r.epochs_run == 4 and all(math.isfinite(h["val_loss"]) for h in r.history)


def test_stopped_members_leave_and_the_rest_train_on(data) -> None:
    seen: list[tuple[int, list[int]]] = []

    def report(rep: EpochReport) -> list[int]:
        seen.append((rep.epoch, sorted(rep.metrics)))
        return [1] if rep.epoch == 2 else ([0] if rep.epoch == 3 else [])

    results = train_pack([cfg(), cfg(lr=3e-3), cfg(act="gelu")], data, seeds=[1, 2, 3], report=report)
    assert seen == [(1, [0, 1, 2]), (2, [0, 1, 2]), (3, [0, 2]), (4, [2])]
    assert [(r.status, r.epochs_run) for r in results] == [("stopped", 3), ("stopped", 2), ("complete", 4)]
    assert all(r.model is not None for r in results)  # a stopped member keeps its best epoch


def test_incompatible_configs_name_the_key(data) -> None:
    def problem(*configs: dict) -> str | None:
        tcs = [resolve_train_config(c) for c in configs]
        return incompatibility(configs, tcs, ["a.json", "b.json"], data.embedding_dim, data.num_models)

    assert problem(cfg(), cfg(hidden=(64, 2), act="gelu", lr=1.0)) is None
    assert problem(cfg(), cfg(bs=64)) == "a.json and b.json differ in train_config.batch_size (32 vs 64)"
    assert "differ in model_config.hidden_dims ([16, 8] vs [16])" in problem(cfg(), cfg(hidden=(16,)))
    assert (
        problem(cfg(), cfg("residual_mlp")) == "a.json and b.json differ in model_type (mlp vs residual_mlp)"
    )
    with pytest.raises(ConfigError, match="config 0 and config 1 differ in train_config.epochs"):
        train_pack([cfg(), cfg(epochs=2)], data, seeds=[0, 0])


def test_a_bad_member_config_fails_alone_and_is_said_in_the_first_report(data) -> None:
    reports: list[EpochReport] = []
    good, bad = train_pack(
        [cfg(), cfg(dropout=1.5)], data, seeds=[0, 0], report=lambda r: reports.append(r) or []
    )
    assert good.status == "complete" and bad.status == "failed" and bad.model is None
    assert bad.error.startswith("ConfigError: ") and "dropout" in bad.error
    assert reports[0].failed == {1: bad.error} and set(reports[0].metrics) == {0}
    with pytest.raises(ConfigError, match="dropout"):  # a pack of one: the config's error, raised
        train_router(cfg(dropout=1.5), data)


def _study(space):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4), direction="maximize")


def test_packer_followers_share_structure_and_keep_full_distributions() -> None:
    space = parse_space(
        tiny_space(
            params={
                "hidden_dims": {"layers": {"low": 1, "high": 3}, "width": {"choices": [16, 32]}},
                "batch_size": {"choices": [32, 64]},
                "activation": {"choices": ["relu", "gelu"]},
            }
        )
    )
    study = _study(space)
    packer = Packer(study, space, 4, 16, 6)
    pack, asked = packer.next_pack(10)
    assert asked == 4 and len(pack) == 4
    structural = {"hidden_layers", "batch_size"}
    assert set(packer.structural(pack[0].params)) == structural  # widths pad, activations mix
    for t in pack[1:]:
        assert {n: t.params[n] for n in structural} == {n: pack[0].params[n] for n in structural}
        assert t.distributions == pack[0].distributions  # recorded over the whole space
    pack2, asked2 = packer.next_pack(1)  # the budget bounds new asks
    assert (len(pack2), asked2) == (1, 1)


def test_packer_takes_enqueued_trials_in_order() -> None:
    space = parse_space(tiny_space(params={"batch_size": {"choices": [32, 64]}}))
    study = _study(space)
    for bs in (32, 32, 64, 64):
        study.enqueue_trial({"batch_size": bs})
    packer = Packer(study, space, 4, 16, 6)
    first, asked = packer.next_pack(10)
    assert [t.params["batch_size"] for t in first] == [32, 32] and asked == 3  # the 64 waits
    second, asked = packer.next_pack(10)
    assert [t.params["batch_size"] for t in second] == [64, 64, 64, 64] and asked == 3
    assert [t.number for t in second][:2] == [2, 3]


def test_packs_hold_one_model_type_and_every_type_is_tried() -> None:
    space = parse_space(
        {
            **tiny_space(),
            "model_type": {"choices": ["mlp", "mf", "residual_mlp"]},
            "params": {"lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True}, "epochs": 2, "batch_size": 32},
            "models": {
                "mlp": {"hidden_dims": {"choices": [[16], [32]]}},
                "mf": {"hidden_dims": [8], "noise_std": {"low": 0.0, "high": 0.2}},
                "residual_mlp": {"hidden_dims": [8]},
            },
        }
    )
    study = _study(space)
    packer = Packer(study, space, 4, 16, 6)
    packs = [packer.next_pack(12)[0] for _ in range(3)]
    types = [{t.params["model_type"] for t in pack} for pack in packs]
    assert all(len(ts) == 1 for ts in types)  # one type per pack
    assert set().union(*types) == {"mlp", "mf", "residual_mlp"}  # each type led a pack


def test_a_pack_owns_its_member_order_and_names_members_by_index(data) -> None:
    from router_models import create_model
    from search.trial.packs import FusedGroup, Pack, SoloGroup

    torch.manual_seed(0)
    widths = [(16, 8), (32, 4), (16, 8), (8, 8)]  # members 0 and 2 share a shape
    models = [
        create_model(cfg(hidden=w)["pipeline_config"], data.embedding_dim, data.num_models) for w in widths
    ]
    for m in models:
        m.eval()
    pack = Pack(models, [1e-3] * 4, [0.0] * 4, torch.device("cpu"), pad=False)
    assert sorted(pack.live) == [0, 1, 2, 3]
    assert [type(g) for g in pack.groups].count(FusedGroup) == 1 and [len(ks) for ks in pack.members].count(
        2
    ) == 1
    x = torch.randn(5, data.embedding_dim)
    pack.eval()
    with torch.no_grad():
        out = pack(x)
        for row, k in enumerate(pack.live):  # row r is member live[r], whatever the caller's order
            torch.testing.assert_close(out[row], models[k](x), rtol=1e-5, atol=1e-5)
    pack.drop([2, 1])
    assert sorted(pack.live) == [0, 3] and pack(x).shape[0] == 2
    state = pack.best_state(0)
    assert (
        set(state) == set(models[0].state_dict()) and state["input_mean"].shape == models[0].input_mean.shape
    )
    with pytest.raises(KeyError, match="member 2 is not in the pack"):
        pack.best_state(2)
    solo = next(g for g in pack.groups if isinstance(g, SoloGroup))
    with pytest.raises(ValueError, match="stays or leaves whole"):
        solo.select([0])
