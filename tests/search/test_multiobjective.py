"""A search over several objectives: dominance and the front, the pruning rule on hand-made
curves, the pick rule, the architecture metrics, and a real packed run that prunes and exports
its front (one router per point)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from router_models import create_model, load_router
from search import metrics as M
from search.__main__ import main
from search.driver.plan import parse_pick
from search.errors import UserError
from search.files.remote import exists
from search.files.rundir import trial_router_uri
from search.metrics.direction import Direction
from search.metrics.pareto import dominates, front, pick, prune_at_rung, scaled
from search.space import load_space, parse_space
from search.space.search_spec import PrunerSpec, SearchSpec
from search.study.dominance import VECTORS, DominancePruner
from search.study.keepers import FrontKeeper
from search.study.objectives import objectives_of
from search.study.pruners import dominance_pruner
from search.study.store import open_study
from search.trial.train import train_pack
from tests.search.spaces import fake_routers, tiny_space, write_space

MAX_MIN = [Direction("max"), Direction("min")]  # e.g. routing accuracy up, parameters down


# -- dominance and the front ----------------------------------------------------------------


def test_dominance_needs_no_worse_everywhere_and_better_somewhere() -> None:
    assert dominates((0.8, 100), (0.7, 100), MAX_MIN)
    assert dominates((0.7, 50), (0.7, 100), MAX_MIN)
    assert not dominates((0.7, 100), (0.7, 100), MAX_MIN)  # equal: neither dominates
    assert not dominates((0.8, 200), (0.7, 100), MAX_MIN)  # a trade-off
    with pytest.raises(ValueError, match="one value per objective"):
        dominates((0.8,), (0.7, 1), MAX_MIN)


def test_front_is_the_non_dominated_set_and_agrees_with_optuna() -> None:
    rng = random.Random(0)
    points = [(round(rng.random(), 1), rng.randint(1, 8)) for _ in range(60)]
    on = front(points, MAX_MIN)
    # non-dominated, and every point left out is dominated by one on it
    for i in on:
        assert not any(dominates(q, points[i], MAX_MIN) for q in points)
    for i in set(range(len(points))) - set(on):
        assert any(dominates(points[j], points[i], MAX_MIN) for j in on)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for p in points:
        study.add_trial(create_trial(values=list(p)))
    assert sorted(t.number for t in study.best_trials) == on
    search = SearchSpec(metric=["val_route_acc", "val_cost"])
    assert [t.number for t in objectives_of(study, search).front()] == on


# -- the pruning rule -----------------------------------------------------------------------


def test_pruning_rule_on_hand_made_curves() -> None:
    # four trials at one rung: (accuracy so far, parameters)
    big_good, small_good, big_bad, small_bad = (0.8, 1000), (0.75, 100), (0.5, 1000), (0.5, 100)
    everyone = [big_good, small_good, big_bad, small_bad]

    def others(p):
        return [q for q in everyone if q is not p]

    # big_bad is dominated by all three others; small_bad only by small_good (big_good has more
    # parameters): a cheap router that is not yet accurate is a trade-off and survives a median
    assert prune_at_rung(big_bad, others(big_bad), MAX_MIN, 0.5, 0)
    assert not prune_at_rung(small_bad, others(small_bad), MAX_MIN, 0.5, 0)
    assert prune_at_rung(small_bad, others(small_bad), MAX_MIN, 1 / 3, 0)  # 1 of 3 is enough
    assert not prune_at_rung(big_good, others(big_good), MAX_MIN, 0.01, 0)  # on the front
    assert not prune_at_rung(big_bad, others(big_bad), MAX_MIN, 0.5, 4)  # too few others yet
    assert not prune_at_rung(big_bad, [], MAX_MIN, 0.5, 0)  # alone at the rung
    assert prune_at_rung((float("nan"), 10), [big_good], MAX_MIN, 1.0, 0)
    # with one objective and half the others, it is the median rule
    one = [Direction("max")]
    assert prune_at_rung((0.5,), [(0.6,), (0.7,), (0.4,), (0.3,)], one, 0.5, 0)  # 2 of 4 better
    assert not prune_at_rung((0.5,), [(0.6,), (0.4,), (0.3,)], one, 0.5, 0)  # 1 of 3
    with pytest.raises(ValueError, match="fraction must be in"):
        prune_at_rung(big_bad, everyone, MAX_MIN, 0.0, 0)


def _study_with_curves(curves: dict[int, dict[int, tuple[float, float]]], states: dict[int, TrialState]):
    """A two-objective study whose trials recorded these vectors by step."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, by_step in curves.items():
        state = states.get(number, TrialState.RUNNING)
        last = max(by_step)
        study.add_trial(
            create_trial(
                state=state,
                values=list(by_step[last]) if state == TrialState.COMPLETE else None,
                params={"x": 0.5},
                distributions={"x": FloatDistribution(0, 1)},
                user_attrs={VECTORS: {str(s): list(v) for s, v in by_step.items()}},
            )
        )
    return study


def test_dominance_pruner_judges_at_its_rungs_against_the_trials_there() -> None:
    curves = {
        0: {1: (0.6, 100), 2: (0.7, 100), 3: (0.8, 100)},
        1: {1: (0.6, 100), 2: (0.7, 100)},
        2: {1: (0.3, 500), 2: (0.3, 500)},  # dominated by both at step 2
        3: {1: (0.9, 10), 2: (0.95, 10)},  # failed: not counted
        4: {1: (0.2, 50), 2: (0.2, 50)},  # the cheapest: a trade-off
    }
    study = _study_with_curves(curves, {0: TrialState.COMPLETE, 3: TrialState.FAIL})
    trials = {t.number: t for t in study.trials}
    median = DominancePruner(0.5, min_others=2, warmup_steps=1)
    assert median.prune(study, trials[2])  # dominated by trials 0 and 1 (2 of 3 others)
    assert not median.prune(study, trials[4])
    assert not DominancePruner(0.5, warmup_steps=3).prune(study, trials[2])  # before warmup
    assert not DominancePruner(0.5, min_others=4).prune(study, trials[2])  # 3 others only
    assert not DominancePruner(1.0).prune(study, trials[2])  # trial 4 does not dominate it
    halving = DominancePruner(1 / 3, rungs_from=1, reduction_factor=3)
    assert [s for s in range(1, 12) if halving.is_rung(s)] == [1, 3, 9]
    assert not halving.prune(study, trials[2])  # step 2 is no rung
    with pytest.raises(ValueError, match="interval_steps must be >= 1, got 0"):
        DominancePruner(0.5, interval_steps=0)


def test_each_pruner_type_maps_to_a_dominance_rule() -> None:
    median = dominance_pruner(PrunerSpec(type="median", n_startup_trials=3, n_warmup_steps=2))
    assert (median.fraction, median.min_others, median.warmup_steps) == (0.5, 3, 2)
    assert dominance_pruner(PrunerSpec(type="percentile", percentile=25.0)).fraction == 0.25
    halving = dominance_pruner(PrunerSpec(type="successive_halving", min_resource=2, reduction_factor=4))
    assert (halving.fraction, halving.rungs_from) == (0.25, 2)
    assert isinstance(dominance_pruner(PrunerSpec(type="none")), optuna.pruners.NopPruner)


# -- the pick rule --------------------------------------------------------------------------


def test_pick_rule_on_a_hand_made_front() -> None:
    points = [(0.80, 300.0), (0.70, 100.0), (0.75, 150.0)]
    assert scaled(points, MAX_MIN) == [[1.0, 0.0], [0.0, 1.0], [0.5, 0.75]]
    assert pick(points, MAX_MIN, [1, 1]) == 2  # 1.25 beats 1.0 and 1.0
    assert pick(points, MAX_MIN, [1, 0]) == 0  # accuracy alone
    assert pick(points, MAX_MIN, [0, 1]) == 1  # size alone
    assert pick(points, MAX_MIN, [3, 1]) == 0  # 3.0 vs 1.0 vs 2.25
    assert pick(points[:2], MAX_MIN, [1, 1]) == 0  # a tie goes to the better first objective
    for scale in (1e308, 5e-324, 1e-300):  # only the ratios count, at any scale
        assert (
            pick(points, MAX_MIN, [scale, scale]) == 2
            and pick(points, MAX_MIN, [3 * min(scale, 1e307), min(scale, 1e307)]) == 0
        )
    for bad in ([0, 0], [-1, 1], [float("inf"), 1]):
        with pytest.raises(ValueError, match="weights must be"):
            pick(points, MAX_MIN, bad)


def test_pick_weights_from_the_command_line() -> None:
    two = parse_space(tiny_space(search={"metric": ["val_route_acc", "param_count"]})).search
    # scaled so the largest is 1: only the ratios count
    assert parse_pick("val_route_acc=2, param_count=0.5", two) == {"val_route_acc": 1.0, "param_count": 0.25}
    assert parse_pick({"param_count": 7}, two) == {"param_count": 1.0}
    assert parse_pick("val_route_acc=1e308,param_count=1e308", two) == {
        "val_route_acc": 1.0,
        "param_count": 1.0,
    }
    assert parse_pick("val_route_acc=5e-324,param_count=5e-324", two) == {
        "val_route_acc": 1.0,
        "param_count": 1.0,
    }
    one = parse_space(tiny_space()).search
    cases = [
        ("val_auc=1", one, "--pick: needs a search over several metrics"),
        ("val_auc=1", two, "--pick: val_auc is not an objective of this search; objectives: val_route_acc"),
        ("val_route_acc=-1", two, "--pick val_route_acc=-1: a weight must be a number >= 0"),
        ("val_route_acc=x", two, "--pick val_route_acc=x: a weight must be a number >= 0"),
        ("val_route_acc", two, "--pick val_route_acc: give metric=weight pairs"),
        ("val_route_acc=0", two, "--pick: at least one weight must be > 0"),
        ("val_route_acc=1,val_route_acc=0", two, "--pick: val_route_acc is given twice"),
    ]
    for text, search, message in cases:
        with pytest.raises(UserError) as info:
            parse_pick(text, search)
        assert str(info.value).startswith(message), str(info.value)


# -- the space ------------------------------------------------------------------------------


def test_the_space_names_objectives_and_their_directions() -> None:
    search = parse_space(
        tiny_space(search={"metric": ["router_latency_ms", "val_route_acc"], "mode": ["min", "max"]})
    ).search
    assert search.objectives == ("router_latency_ms", "val_route_acc")
    assert search.directions == ("min", "max") and search.multi
    assert search.primary == "val_route_acc" and search.direction == "max"  # picks best epochs
    assert search.objective_text == "objectives router_latency_ms (min), val_route_acc (max)"
    single = parse_space(tiny_space()).search
    assert (single.objectives, single.directions, single.multi) == (("val_auc",), ("max",), False)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"metric": ["val_auc", "val_auc"]}, "search.metric: a metric is named twice"),
        ({"metric": ["val_auc", "nope"]}, "search.metric: unknown metric 'nope'"),
        ({"metric": []}, "search.metric: give at least one metric"),
        (
            {"metric": ["param_count", "router_latency_ms"]},
            "search.metric: param_count, router_latency_ms describe",
        ),
        (
            {"metric": ["val_auc", "param_count"], "mode": ["max"]},
            "search.mode: give one mode per metric (2), got 1",
        ),
        (
            {"metric": ["val_auc", "param_count"], "mode": "max"},
            "search.mode: give one mode per metric, a list of 2",
        ),
        (
            {"metric": ["val_auc", "param_count"], "pruner": {"type": "hyperband"}},
            "search.pruner.type: hyperband judges one objective",
        ),
    ],
)
def test_bad_objectives_are_one_line(search: dict, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_space(tiny_space(search=search))
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


# -- what the trainer measures --------------------------------------------------------------


def test_trainer_reports_parameters_latency_and_cost() -> None:
    from search.data import load_data

    data = load_data("synthetic:n_questions=120,n_models=4,dim=8,seed=1")
    configs = [
        {
            "model_type": "mlp",
            "model_config": {"hidden_dims": [h]},
            "train_config": {"epochs": 2, "batch_size": 32},
        }
        for h in (4, 32)
    ]
    seen: list[dict[int, dict[str, float]]] = []

    def report(rep):
        seen.append(dict(rep.metrics))
        return []

    train_pack(configs, data, seeds=[0, 1], report=report, metric="val_auc", latency=True)
    for k in range(2):
        model = create_model({"model_type": "mlp", "model_config": configs[k]["model_config"]}, 8, 4)
        count = sum(p.numel() for p in model.parameters())
        for epoch in seen:  # the same every epoch
            assert epoch[k]["param_count"] == count
            assert 0 < epoch[k]["router_latency_ms"] < 1000
            assert "val_cost" not in epoch[k]  # no costs in this data
        assert seen[0][k]["router_latency_ms"] == seen[1][k]["router_latency_ms"]  # measured once
    with pytest.raises(Exception, match="param_count is the same at every epoch"):
        train_pack(configs[:1], data, seeds=[0], metric="param_count")


def test_val_cost_is_the_mean_cost_of_the_routed_llms() -> None:
    gen = torch.Generator().manual_seed(0)
    costs = torch.tensor([0.005, 0.0005, 0.00008])
    logits = torch.randn(2, 50, 3, generator=gen)
    y = (torch.rand(50, 3, generator=gen) < 0.6).float()
    mask = torch.ones(50, 3, dtype=torch.bool)
    rows = M.evaluate_members(logits, y, mask, costs.expand(50, 3), costs)
    for k, row in enumerate(rows):
        assert row["cost"] == pytest.approx(float(costs[logits[k].argmax(1)].mean()), rel=1e-6)


def test_front_keeper_deletes_the_routers_of_dominated_trials(tmp_path: Path) -> None:
    storage = str(tmp_path)
    fake_routers(storage, 4)
    keeper = FrontKeeper(storage, MAX_MIN, kept=[(0, (0.7, 100)), (1, (0.6, 50))])
    keeper.add(2, (0.8, 100))  # dominates trial 0
    keeper.add(3, (0.5, 500))  # dominated on arrival
    assert keeper.numbers == [1, 2]
    assert [exists(trial_router_uri(storage, n)) for n in range(4)] == [False, True, True, False]


# -- a real run -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_packed_search_over_two_objectives_prunes_and_exports_its_front(tmp_path: Path, capsys) -> None:
    space = tiny_space(
        params={"epochs": 4, "hidden_dims": {"choices": [[4], [16], [64], [128]]}},
        search={
            "num_samples": 12,
            "metric": ["val_route_acc", "param_count"],
            "pruner": {"type": "percentile", "percentile": 25.0, "n_startup_trials": 2, "n_warmup_steps": 1},
            "pack_size": 4,
            # multi-objective TPE past its start-up trials, which also reads the pruned ones
            "sampler": {"type": "tpe", "n_startup_trials": 2},
        },
    )
    path = write_space(tmp_path / "mo.yaml", space)
    out, export = tmp_path / "run", tmp_path / "config.json"
    assert main(["run", str(path), "--out", str(out), "--export", str(export)]) == 0
    assert "Pareto front:" in capsys.readouterr().out

    study = open_study(out, load_space(path), write=False)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert pruned, "no trial was pruned"
    for t in pruned:  # judged on the vectors they recorded, which the study keeps
        assert t.values is None and t.user_attrs[VECTORS]
        # not as intermediate values: Optuna's samplers would take the trial for a single objective's
        assert t.intermediate_values == {}
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]

    pareto = json.loads((out / "pareto.json").read_text())
    numbers = [p["trial"] for p in pareto["front"]]
    expected = front([t.values for t in complete], MAX_MIN)
    assert numbers == [complete[i].number for i in expected]  # the non-dominated completed trials
    values = [[p["values"]["val_route_acc"], p["values"]["param_count"]] for p in pareto["front"]]
    for v in values:
        assert not any(dominates(t.values, v, MAX_MIN) for t in complete)
    for p in pareto["front"]:
        router, info = load_router(out / p["router"])
        assert sum(q.numel() for q in router.parameters()) == p["values"]["param_count"]
        assert info["config"]["pipeline_config"]["model_type"] == "mlp"

    config = json.loads(export.read_text())
    picked = pareto["front"][pick(values, MAX_MIN, [1.0, 1.0])]["trial"]
    assert config["search_result"]["trial"] == pareto["picked"] == picked
    assert [o["metric"] for o in config["search_result"]["objectives"]] == ["val_route_acc", "param_count"]
    assert (out / "best_router.pt").read_bytes() == (out / f"pareto/trial_{picked}.pt").read_bytes()
    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert {r["trial"] for r in rows if r["pareto"]} == set(numbers)
    assert all(r["value_param_count"] is not None for r in rows if r["state"] == "COMPLETE")

    from search import api  # the Python API reads the same front

    table = api.RunResult.load(out).pareto
    assert table is not None and list(table.columns) == [
        "trial",
        "val_route_acc",
        "param_count",
        "router",
        "picked",
    ]
    assert table.trial.tolist() == numbers and table[table.picked].trial.tolist() == [picked]
    assert api.RunResult.load(out).pareto_router(numbers[0]) is not None
    assert api.RunResult.load(out).pareto_router(999) is None

    assert main(["report", str(out)]) == 0
    assert (out / "pareto_front.png").stat().st_size > 0
    assert "## Pareto front" in (out / "report.md").read_text()

    # the same front, another pick: all weight on routing accuracy
    assert (
        main(
            [
                "run",
                str(path),
                "--out",
                str(out),
                "--export",
                str(export),
                "--resume",
                "--pick",
                "val_route_acc=1",
            ]
        )
        == 0
    )
    again = json.loads((out / "pareto.json").read_text())
    best = max(again["front"], key=lambda p: (p["values"]["val_route_acc"], -p["values"]["param_count"]))
    assert again["picked"] == best["trial"] == json.loads(export.read_text())["search_result"]["trial"]
    assert again["weights"] == {"val_route_acc": 1.0, "param_count": 0.0}

    capsys.readouterr()
    assert main(["run", str(path), "--out", str(out), "--resume", "--pick", "val_auc=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --pick: val_auc is not an objective") and "\n" not in err


def test_nsga2_is_a_sampler_of_the_space() -> None:
    from search.space import make_sampler

    search = parse_space(
        tiny_space(
            search={"metric": ["val_auc", "param_count"], "sampler": {"type": "nsga2", "population_size": 6}}
        )
    ).search
    sampler = make_sampler(search.sampler, search.seed)
    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=14)
    assert len(study.best_trials) >= 1


def test_a_tracked_trial_carries_each_objective_value() -> None:
    from types import SimpleNamespace

    from search.driver.tracking import trial_record

    live = SimpleNamespace(history=[], epochs=3, started=0.0, pack=0, node="", device="cpu", best_epoch=2)
    frozen = SimpleNamespace(
        number=4, state=TrialState.COMPLETE, values=[0.7, 120.0], params={}, user_attrs={}
    )
    record = trial_record(frozen, live, ("val_route_acc", "param_count"))
    assert record["values"] == {"value_val_route_acc": 0.7, "value_param_count": 120.0}
    assert trial_record(frozen, live, ("val_auc",))["values"] == {"value": 0.7}
    pruned = SimpleNamespace(number=5, state=TrialState.PRUNED, values=None, params={}, user_attrs={})
    assert trial_record(pruned, live, ("val_route_acc", "param_count"))["values"] == {}


@pytest.mark.slow
def test_a_search_over_quality_and_llm_cost_records_each_routers_cost(tmp_path: Path, capsys) -> None:
    from search.data import load_data
    from search.routing.inference import val_logits
    from tests.conftest import write_embedllm
    from tests.search.test_costs import _with_costs

    folder = write_embedllm(tmp_path / "csv", n=200, m=4, d=8)
    _with_costs(folder)
    space = tiny_space(search={"num_samples": 4, "metric": ["val_route_acc", "val_cost"], "pack_size": 2})
    space["data"] = {"path": str(folder)}
    path = write_space(tmp_path / "cost.yaml", space)
    out = tmp_path / "run"
    from search import api  # through the Python API, picking the cheapest point

    result = api.run(path, out=out, export=tmp_path / "c.json", quiet=True, pick={"val_cost": 1})
    front = result.pareto
    assert front is not None and result.best is not None
    assert result.best.number == front.sort_values(["val_cost", "trial"]).trial.iloc[0]
    data = load_data(str(folder))
    _, y, mask = data.split("val")
    cost, mean_cost = torch.from_numpy(data.split_cost("val")), torch.from_numpy(data.mean_cost())
    for p in json.loads((out / "pareto.json").read_text())["front"]:
        router, _ = load_router(out / p["router"])
        logits = val_logits(router, data).unsqueeze(0)
        row = M.evaluate_members(logits, torch.from_numpy(y), torch.from_numpy(mask), cost, mean_cost)[0]
        # the values of one router: its best epoch's routing accuracy and LLM cost
        assert row["cost"] == pytest.approx(p["values"]["val_cost"], rel=1e-5)
        assert row["route_acc"] == pytest.approx(p["values"]["val_route_acc"], abs=1e-6)

    space["data"] = {"synthetic": {"n_questions": 100, "n_models": 3, "dim": 8, "seed": 0}}
    path = write_space(tmp_path / "nocost.yaml", space)
    capsys.readouterr()
    assert main(["run", str(path), "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: search.metric val_cost needs data with costs") and err.count("\n") == 1
