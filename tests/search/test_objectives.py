"""One objective or several: what the end of a run, the export and the report ask of the
run's objectives, without branching on how many there are."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from search.space.search_spec import SearchSpec
from search.study.keepers import FrontKeeper, RouterKeeper
from search.study.objectives import One, Several, objectives_of

DIST = {"x": FloatDistribution(0, 1)}


def _study(directions: list[str], values: list[list[float]]) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=directions)
    for i, v in enumerate(values):
        study.add_trial(
            create_trial(values=v, params={"x": i / 10}, distributions=DIST, intermediate_values={1: v[0]})
        )
    return study


def test_one_objective_exports_its_best_and_keeps_each_groups_best(tmp_path) -> None:
    study = _study(["maximize"], [[0.6], [0.8], [0.7]])
    objectives = objectives_of(study, SearchSpec(metric="val_route_acc"))
    assert isinstance(objectives, One) and objectives.front() == []
    assert objectives.exported().number == 1 and objectives.exported({"val_route_acc": 1}).number == 1
    assert objectives.progress() == "best 0.8000"
    assert objectives.summary(study.trials[1]) == "best: trial 1, val_route_acc = 0.8000"
    assert objectives.columns(study.trials[0], set()) == {} and objectives.result(study.trials[1]) == {}
    assert objectives.curve(study.trials[2]) == {1: 0.7}
    assert (objectives.no_ensemble, objectives.per_family, objectives.recommends) == (None, True, True)
    keeper = objectives.keeper(str(tmp_path), 1, lambda t: "mlp" if t.number != 2 else "knn")
    assert isinstance(keeper, RouterKeeper) and keeper.numbers == [1, 2]  # each group's best


def test_several_objectives_export_the_picked_front_point() -> None:
    # (route_acc max, cost min): 0 and 1 and 3 are on the front, 2 is dominated by 1
    study = _study(["maximize", "minimize"], [[0.6, 1.0], [0.8, 5.0], [0.7, 6.0], [0.9, 9.0]])
    objectives = objectives_of(study, SearchSpec(metric=["val_route_acc", "val_cost"]))
    assert isinstance(objectives, Several)
    assert [t.number for t in objectives.front()] == [0, 1, 3]
    assert objectives.exported({"val_route_acc": 1.0}).number == 3  # accuracy only
    assert objectives.exported({"val_cost": 1.0}).number == 0  # cost only
    assert objectives.progress() == "front 3"
    assert objectives.summary(study.trials[1]).startswith("picked from the Pareto front of 3: trial 1")
    assert objectives.columns(study.trials[2], {0, 1, 3}) == {
        "value_val_route_acc": 0.7,
        "value_val_cost": 6.0,
        "pareto": False,
    }
    assert objectives.result(study.trials[3])["objectives"][1] == {
        "metric": "val_cost",
        "mode": "min",
        "value": 9.0,
    }
    assert objectives.no_ensemble and not objectives.per_family and not objectives.recommends
    assert isinstance(objectives.keeper("/nowhere", 1, lambda t: ""), FrontKeeper)


def test_the_objectives_must_match_the_study() -> None:
    study = _study(["maximize"], [[0.5]])
    with pytest.raises(ValueError, match="the study has 1 objective"):
        objectives_of(study, SearchSpec(metric=["val_route_acc", "val_cost"]))
