"""The indexed successive halving decides exactly as Optuna's, without scanning the study."""

from __future__ import annotations

import random

import optuna
import pytest

from search.study.halving import IndexedHalving


def _decisions(pruner: optuna.pruners.BasePruner, curves: list[list[float]], direction: str, bind: bool):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction, pruner=pruner)
    if bind:
        pruner.bind(study)
    out = []
    trials = [study.ask() for _ in curves]  # all running at once, reporting in turn
    alive = set(range(len(curves)))
    for step in range(1, len(curves[0]) + 1):
        for i in sorted(alive):
            trials[i].report(curves[i][step - 1], step)
            if trials[i].should_prune():
                out.append((i, step))
                study.tell(trials[i], state=optuna.trial.TrialState.PRUNED)
                alive.discard(i)
    for i in sorted(alive):
        study.tell(trials[i], curves[i][-1])
    return out, study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize(("min_resource", "rf", "rate"), [(1, 2, 0), (2, 3, 0), (1, 4, 1), (2, 5, 0)])
def test_it_prunes_the_same_trials_at_the_same_steps_as_optunas(direction, min_resource, rf, rate) -> None:
    rng = random.Random(min_resource * 100 + rf * 10 + rate)
    curves = [[rng.random() for _ in range(12)] for _ in range(60)]
    curves[7][3] = float("nan")  # a NaN at a rung prunes
    ours, study = _decisions(IndexedHalving(min_resource, rf, rate), curves, direction, bind=True)
    theirs, _ = _decisions(
        optuna.pruners.SuccessiveHalvingPruner(min_resource, rf, rate), curves, direction, bind=False
    )
    assert ours == theirs and ours  # some were pruned, at the same steps
    assert any(k.startswith("completed_rung_") for t in study.trials for k in t.system_attrs)


def test_a_resumed_study_is_read_once_and_decides_as_a_fresh_scan() -> None:
    rng = random.Random(3)
    curves = [[rng.random() for _ in range(6)] for _ in range(30)]
    _, study = _decisions(optuna.pruners.SuccessiveHalvingPruner(1, 3), curves, "maximize", bind=False)
    pruner = IndexedHalving(1, 3)
    pruner.bind(study)  # the rung values the earlier session recorded
    seen = []
    for value in (0.0, 0.5, 0.99, 0.7):
        trial = study.ask()
        trial.report(value, 1)
        # Optuna's pruner on a copy of the study as it is now, then ours on the study itself
        copy = optuna.create_study(direction="maximize")
        for t in study.get_trials():
            copy.add_trial(t) if t.state.is_finished() else None
        copy_trial = copy.ask()
        copy_trial.report(value, 1)
        theirs = optuna.pruners.SuccessiveHalvingPruner(1, 3).prune(
            copy, copy._storage.get_trial(copy_trial._trial_id)
        )
        ours = pruner.prune(study, study._storage.get_trial(trial._trial_id))
        assert ours == theirs
        seen.append(ours)
        study.tell(trial, value)
    assert seen[0] and not seen[2]  # the worst value is pruned, the best goes on


def test_the_run_storage_knows_its_waiting_trials_without_a_scan(tmp_path) -> None:
    from optuna.trial import TrialState

    from search.space import parse_space
    from search.study.store import held_writes, open_study
    from tests.search.spaces import tiny_space

    space = parse_space(tiny_space())
    study = open_study(tmp_path, space)
    for lr in (0.1, 0.2, 0.3):
        study.enqueue_trial({"lr": lr})

    def waiting(s: optuna.Study) -> list[float]:
        return [t.system_attrs["fixed_params"]["lr"] for t in s.get_trials(states=(TrialState.WAITING,))]

    assert waiting(study) == [0.1, 0.2, 0.3]
    trial = study.ask()  # takes the oldest waiting trial
    assert trial.suggest_float("lr", 1e-4, 1.0) == 0.1 and waiting(study) == [0.2, 0.3]
    with held_writes(study):  # held: the journal has nothing of these until the block ends
        trial.set_user_attr("a", 1)
        trial.set_user_attr("b", 2)
        assert "a" not in open_study(tmp_path, space).trials[trial.number].user_attrs
    assert open_study(tmp_path, space).trials[trial.number].user_attrs == {"a": 1, "b": 2}
    again = open_study(tmp_path, space)  # a resumed run reads them from the journal
    assert waiting(again) == [0.2, 0.3]
    assert len(again.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))) == 3
