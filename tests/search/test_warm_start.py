"""Warm starts without Ray: which earlier trials fit a space, the lines said, the seeds kept in
the run dir, and a sampler that learns from them while the study holds only its own trials."""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search.cli.main import main
from search.driver.warm_start import collect_seeds, first_tries, fitted_params
from search.errors import UserError
from search.files.rundir import RunDir
from search.results.records import RunInfo
from search.space import load_space, parse_space
from search.study.store import open_study
from search.study.warm import Seed, WarmSampler, frozen, read_seeds, write_seeds
from tests.search.spaces import tiny_space, write_space

FP = {"source": "synthetic", "model_names": ["a", "b"], "embedding_dim": 16, "questions": 300, "sha256": "x"}


def _tpe(**search: object) -> dict:
    return tiny_space(search={"sampler": {"type": "tpe", "n_startup_trials": 4}, **search})


def _earlier_run(tmp_path: Path, space: dict, values: dict[float, float], name: str = "old") -> Path:
    """A run dir holding ``space`` and completed trials (lr -> val_auc), and one pruned."""
    run = tmp_path / name
    run.mkdir()
    path = write_space(run / RunDir.SPACE, space)
    parsed = load_space(str(path))
    study = open_study(run, parsed)
    dists = parsed.distributions()
    for lr, value in values.items():
        params = {"hidden_dims": "[16]", "dropout": 0.1, "lr": lr}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    pruned = {"hidden_dims": "[32]", "dropout": 0.2, "lr": 1e-3}
    study.add_trial(optuna.trial.create_trial(params=pruned, distributions=dists, state=TrialState.PRUNED))
    RunInfo(space=str(path), data={**FP, "model_names": ["a"], "sha256": "y"}).write(run)
    return run


def test_a_trial_fits_when_this_space_makes_its_configuration() -> None:
    then = parse_space(_tpe(), name="then")
    params = {"hidden_dims": "[16]", "dropout": 0.1, "lr": 1e-3}
    assert fitted_params(params, then, then) == (params, "")
    narrower = parse_space(tiny_space(params={"lr": {"low": 1e-4, "high": 5e-4, "log": True}}), name="n")
    assert fitted_params(params, then, narrower) == (None, "lr 0.001 is outside this space's range")
    fixed = parse_space(tiny_space(params={"dropout": 0.3}), name="f")
    assert fitted_params(params, then, fixed) == (None, "dropout was 0.1, this space makes 0.3")
    longer = parse_space(tiny_space(params={"epochs": 8}), name="e")
    assert fitted_params(params, then, longer) == (None, "epochs was 4, this space makes 8")
    other = parse_space(tiny_space(model_type="mf"), name="mf")
    assert fitted_params(params, then, other) == (None, "model type mlp is not searched now")
    # a space that searches the model type names the same settings with its prefix
    raw = tiny_space(model_type={"choices": ["mlp", "mf"]})
    raw["params"] = {"lr": {"low": 1e-4, "high": 3e-2, "log": True}, "batch_size": 64, "epochs": 4}
    mlp = {"hidden_dims": {"choices": [[16], [32]]}, "dropout": {"low": 0.0, "high": 0.3}}
    raw["models"] = {"mlp": mlp, "mf": {"hidden_dims": [16], "dropout": 0.1}}
    both = parse_space(raw, name="both")
    mapped, why = fitted_params(params, then, both)
    assert why == "" and mapped == {
        "model_type": "mlp",
        "lr": 1e-3,
        "mlp.hidden_dims": "[16]",
        "mlp.dropout": 0.1,
    }


def test_collect_says_how_many_fit_and_how_the_data_differ(tmp_path: Path, caplog) -> None:
    wide = tiny_space(params={"lr": {"low": 1e-4, "high": 0.1, "log": True}})
    old = _earlier_run(tmp_path, wide, {1e-3: 0.7, 2e-3: 0.72, 0.05: 0.5})
    now = parse_space(tiny_space(params={"lr": {"low": 1e-4, "high": 3e-2, "log": True}}), name="now")
    with caplog.at_level(logging.INFO, logger="search"):
        seeds = collect_seeds([str(old)], now, FP)
    assert [s.params["lr"] for s in seeds] == [1e-3, 2e-3, 1e-3]
    assert [s.values for s in seeds] == [[0.7], [0.72], None]  # the pruned one, by its reports
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("warm start:"))
    assert f"3 of 4 finished trials of {old} seed the study (1 pruned); 1 do not fit this space" in line
    assert "lr 0.05 is outside this space's range" in line
    assert "other data: other LLMs: 1 new ('b'...)" in line
    # another objective: its values do not compare, nothing is used
    other = parse_space(tiny_space(search={"metric": "val_loss"}), name="loss")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="search"):
        assert collect_seeds([str(old)], other, FP) == []
    assert "searched val_auc, this run val_loss" in caplog.text
    with pytest.raises(UserError, match="nsga2 sampler breeds its own generations"):
        collect_seeds(
            [str(old)], parse_space(tiny_space(search={"sampler": {"type": "nsga2"}}), name="g"), FP
        )


def _first_asks(run: Path, space: dict, n: int) -> list[float]:
    parsed = parse_space(space, name="s")
    study = open_study(run, parsed)
    lrs = []
    for _ in range(n):
        trial = study.ask()
        parsed.suggest(trial)
        lrs.append(trial.params["lr"])
        study.tell(trial, 0.5)
    return lrs


def test_the_sampler_learns_from_seeds_the_study_holds_only_its_own(tmp_path: Path) -> None:
    space = _tpe()
    good = {0.02: 0.9, 0.021: 0.91, 0.019: 0.9, 0.022: 0.92}
    bad = {1e-4 * (1 + i / 10): 0.5 for i in range(12)}
    seeds = [
        Seed({"hidden_dims": "[16]", "dropout": 0.1, "lr": lr}, [v], "old", i)
        for i, (lr, v) in enumerate({**good, **bad}.items())
    ]
    runs = [tmp_path / n for n in ("a", "b", "cold")]
    for run in runs[:2]:
        run.mkdir()
        write_seeds(run, seeds, ["old"])
    runs[2].mkdir()
    warm_a, warm_b = _first_asks(runs[0], space, 3), _first_asks(runs[1], space, 3)
    cold = _first_asks(runs[2], space, 3)
    assert warm_a == warm_b  # reproducible: the same seeds and seed give the same trials
    assert warm_a != cold
    study = open_study(runs[0], parse_space(space, name="s"))
    assert len(study.trials) == 3 and all(t.number >= 0 for t in study.trials)
    assert isinstance(study.sampler, WarmSampler) and len(read_seeds(runs[0])) == len(seeds)
    # a resume reads the same seeds from the run dir, whatever became of the earlier run: two
    # copies of the run resumed ask the same next trial
    import shutil

    shutil.copytree(runs[0], tmp_path / "copy")
    assert _first_asks(runs[0], space, 2) == _first_asks(tmp_path / "copy", space, 2)


def test_warm_start_bad_inputs_are_one_line(tmp_path: Path, capsys) -> None:
    space = write_space(tmp_path / "s.yaml", tiny_space())
    (tmp_path / "empty").mkdir()
    assert (
        main(["run", str(space), "--out", str(tmp_path / "r"), "--warm-start", str(tmp_path / "empty")]) == 2
    )
    err = capsys.readouterr().err
    assert "--warm-start" in err and "not a run dir" in err and err.count("\n") == 1
    assert main(["run", str(space), "--out", str(tmp_path / "r"), "--warm-start", str(tmp_path / "r")]) == 2
    assert "is this run's own dir" in capsys.readouterr().err
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / RunDir.WARM_START).write_text("{")
    with pytest.raises(UserError, match="not a warm start record"):
        read_seeds(tmp_path / "damaged")
    import search

    with pytest.raises(UserError, match="warm_start must be a list of paths"):
        search.run(space, warm_start="old", quiet=True)


def test_the_best_completed_seeds_are_tried_first_best_first() -> None:
    space = parse_space(tiny_space(), name="s")

    def seed(lr: float, value: float | None) -> Seed:
        return Seed(
            {"hidden_dims": "[16]", "dropout": 0.1, "lr": lr}, None if value is None else [value], "old", 0
        )

    seeds = [
        seed(1e-3, 0.7),
        seed(2e-3, 0.9),
        seed(3e-3, None),
        seed(2e-3, 0.9),
        seed(4e-3, 0.8),
        seed(5e-3, 0.1),
    ]
    assert [p["lr"] for p in first_tries(seeds, space)] == [2e-3, 4e-3, 1e-3]  # distinct, no pruned
    loss = parse_space(tiny_space(search={"metric": "val_loss"}), name="loss")
    assert [p["lr"] for p in first_tries(seeds, loss, k=2)] == [5e-3, 1e-3]  # lower is better
    several = parse_space(tiny_space(search={"metric": ["val_auc", "param_count"]}), name="pareto")
    assert first_tries(seeds, several) == []


class _Spy(optuna.samplers.RandomSampler):
    """A sampler that records the finished trials it is shown each time it samples."""

    def __init__(self) -> None:
        super().__init__(seed=0)
        self.seen: list[list[int]] = []

    def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        self.seen.append([t.number for t in done])
        return super().sample_independent(study, trial, param_name, param_distribution)


def test_the_sampler_is_shown_the_seeds_before_the_studys_own_trials(tmp_path: Path) -> None:
    space = parse_space(tiny_space(), name="s")
    seeds = [Seed({"hidden_dims": "[16]", "dropout": 0.1, "lr": 1e-3}, [0.8], "old", 0)]
    seeds.append(Seed({"hidden_dims": "[32]", "dropout": 0.2, "lr": 2e-3}, None, "old", 1, {3: 0.6}))
    spy = _Spy()
    study = optuna.create_study(direction="maximize", sampler=WarmSampler(spy, frozen(seeds, space)))
    for value in (0.5, 0.7):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, value)
    assert spy.seen[0] == [-2, -1] and spy.seen[-1] == [-2, -1, 0]  # the seeds first, then its own
    assert [t.number for t in study.trials] == [0, 1]  # the study holds only its own
    pruned = frozen(seeds, space)[1]
    assert pruned.state == TrialState.PRUNED and pruned.intermediate_values == {3: 0.6}
