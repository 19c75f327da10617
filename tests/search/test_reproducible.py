"""Families that survive pruning (each model type judged against its own) and searches that
do not depend on timing: the same command and seed give the same results."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

from search.__main__ import main
from search.study.ordering import AskGate
from search.study.views import GroupedPruner
from tests.search.spaces import tiny_space, write_space


def _study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a fixed name: Hyperband puts a trial in a bracket by a hash of the name and its number
    return optuna.create_study(study_name="families", direction="maximize", pruner=pruner)


def _trial(study: optuna.Study, kind: str, values: list[float]) -> TrialState:
    """A trial of ``kind`` reporting ``values`` epoch by epoch until pruned; its final state."""
    study.enqueue_trial({"model_type": kind})
    t = study.ask({"model_type": optuna.distributions.CategoricalDistribution(["fast", "slow"])})
    assert t.params["model_type"] == kind
    for step, v in enumerate(values, start=1):
        t.report(v, step)
        if t.should_prune():
            study.tell(t, state=TrialState.PRUNED)
            return TrialState.PRUNED
    study.tell(t, values[-1])
    return TrialState.COMPLETE


FAST = 12  # enough for every Hyperband bracket to hold fast trials


@pytest.mark.parametrize(
    "inner",
    [
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2),
        lambda: optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=4, reduction_factor=2),
    ],
    ids=["successive_halving", "median", "hyperband"],
)
def test_a_slow_family_survives_when_judged_against_its_own(inner) -> None:
    fast = [0.6, 0.7, 0.75, 0.76]
    slow = [0.3, 0.5, 0.7, 0.8]  # learns slowly, ends best

    def states(pruner: optuna.pruners.BasePruner) -> list[TrialState]:
        study = _study(pruner)
        out = [_trial(study, "fast", [v + 0.001 * i for v in fast]) for i in range(FAST)]
        return out + [_trial(study, "slow", [v + 0.001 * i for v in slow]) for i in range(3)]

    across = states(inner())
    own = states(GroupedPruner(inner(), "model_type"))
    # against the fast ones, slow ones are pruned (Hyperband's last bracket never prunes)
    assert across[FAST:].count(TrialState.COMPLETE) < own[FAST:].count(TrialState.COMPLETE)
    assert TrialState.COMPLETE in own[FAST:] and TrialState.COMPLETE in own[:FAST]
    # with a scope that shows every earlier trial: the same decisions (trials come in order)
    scoped = GroupedPruner(inner(), "model_type")
    scoped.scope = lambda trial: lambda number: number < trial.number
    assert states(scoped) == own


def test_grouped_pruner_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="inner must be an Optuna pruner, got 3"):
        GroupedPruner(3, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group must be a param name or None, got ''"):
        GroupedPruner(optuna.pruners.NopPruner(), "")


def test_each_pack_sees_the_packs_a_lag_back_and_its_own_lower_members() -> None:
    gate = AskGate(lag=2, first_number=3)  # trials 0-2 are an earlier session's
    assert gate.may_ask(lambda n: False)  # the first packs see nothing of this session
    gate.add([3, 4])
    gate.add([5, 6])
    assert not gate.may_ask(lambda n: n in (5, 6))  # pack 0 must end before pack 2 is asked
    assert gate.may_ask(lambda n: n in (3, 4))
    gate.add([7, 8, 9])
    keep = gate.keep(extra={10})
    assert keep is not None

    def shown(number: int, state: TrialState = TrialState.COMPLETE) -> bool:
        t = optuna.trial.create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None)
        t.number = number
        return keep(t) is not None

    # the next pack's sampler: an earlier session, packs 0 and 1, the waiting leader, new asks
    assert [n for n in range(13) if shown(n)] == [0, 1, 2, 3, 4, 5, 6, 10, 11, 12]

    def member(number: int, leader: int) -> optuna.trial.FrozenTrial:
        t = optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5, user_attrs={"pack": leader})
        t.number = number
        return t

    visible = gate.scope(member(8, 7))
    assert visible is not None
    # pack 2 is judged against pack 0 (a lag back), its own lower member, the earlier session
    assert [n for n in range(10) if visible(n)] == [0, 1, 2, 3, 4, 7]
    assert AskGate(lag=None, first_number=0).scope(member(8, 7)) is None
    with pytest.raises(ValueError, match="lag must be >= 1 or None, got 0"):
        AskGate(lag=0, first_number=0)


def _run(tmp: Path, name: str, space: dict) -> list[dict]:
    path = write_space(tmp / f"{name}.yaml", space)
    out = tmp / name
    assert main(["run", str(path), "--out", str(out), "--export", str(tmp / f"{name}.json")]) == 0
    return pq.read_table(out / "results.parquet").to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["val_auc", ["val_route_acc", "param_count"]], ids=["one", "two"])
def test_two_runs_with_one_seed_at_concurrency_two_match_and_every_type_completes(
    tmp_path: Path, metric
) -> None:
    space = tiny_space(
        model_type={"choices": ["mlp", "mf"]},
        params={"lr": {"low": 1.0e-3, "high": 3.0e-2, "log": True}, "batch_size": 64, "epochs": 4},
        models={
            "mlp": {"hidden_dims": {"choices": [[16], [32]]}, "dropout": {"low": 0.0, "high": 0.3}},
            "mf": {"hidden_dims": {"choices": [[8], [16]]}, "dropout": 0.0},
        },
        search={
            "num_samples": 10,
            "metric": metric,  # with two, pruned by dominance, judged per model type in a view
            "sampler": {"type": "tpe", "n_startup_trials": 3},
            "pruner": {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
            "max_concurrent_trials": 2,
            "pack_size": 2,
            "ensemble": {"size": 0},
        },
    )
    space["params"].pop("hidden_dims", None)
    space["params"].pop("dropout", None)
    first = _run(tmp_path, "a", space)
    second = _run(tmp_path, "b", space)
    columns = ("trial", "state", "value", "model_type", "pack", "epochs_run")
    if isinstance(metric, list):
        columns += ("value_param_count", "pareto")
    assert [tuple(r[c] for c in columns) for r in first] == [tuple(r[c] for c in columns) for r in second]
    params = [c for c in first[0] if c.startswith("params_") or c.startswith("mlp.") or c.startswith("mf.")]
    assert [[r[c] for c in params] for r in first] == [[r[c] for c in params] for r in second]
    for kind in ("mlp", "mf"):
        assert any(r["model_type"] == kind and r["state"] == "COMPLETE" for r in first), kind


@pytest.mark.slow
def test_train_reproduces_its_trial_on_the_searchs_data(tmp_path: Path, capsys) -> None:
    space = tiny_space(search={"num_samples": 2, "ensemble": {"size": 0}})
    _run(tmp_path, "s", space)
    export = tmp_path / "s.json"
    result = json.loads(export.read_text())["search_result"]
    capsys.readouterr()
    assert main(["train", str(export), "--out", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert f"data: the search's ({result['data_source']})" in out
    metrics = json.loads((tmp_path / "again" / "metrics.json").read_text())
    # the trial's seed, the search's metric and data: its best epoch and value again, exactly
    assert metrics["selection_metric"] == result["metric"] == "val_auc"
    assert metrics["best_epoch"] == result["best_epoch"]
    assert metrics["val"]["auc"] == pytest.approx(result["value"], abs=1e-6)
    # other data is said
    assert (
        main(
            [
                "train",
                str(export),
                "--data",
                "synthetic:n_questions=300,n_models=6,dim=16,seed=5",
                "--out",
                str(tmp_path / "other"),
            ]
        )
        == 0
    )
    assert "not on the search's data" in capsys.readouterr().out
