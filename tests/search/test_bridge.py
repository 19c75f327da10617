"""The bridge between Tune and the study, driven by hand: no Ray, no processes."""

from __future__ import annotations

import errno
import subprocess
import sys

import optuna
import pytest

from search.driver.bridge import OptunaBridge, Verdict
from search.driver.packer import Packer
from search.driver.tune_side import TuneSide
from search.space import parse_space
from search.trial.protocol import EpochResult, PackResult
from tests.search.spaces import tiny_space


@pytest.fixture
def bridge() -> OptunaBridge:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(tiny_space(search={"num_samples": 4, "pack_size": 2}))
    study = optuna.create_study(direction="maximize")
    packer = Packer(study, space, pack_size=2, embedding_dim=16, num_models=6)
    return OptunaBridge(study, space, 4, packer)


def _tune_trial(trial_id: str):
    return type("TuneTrial", (), {"trial_id": trial_id})()


def _report(members: list[dict], epoch: int, value: float) -> dict:
    metrics = {m["number"]: {"val_auc": value} for m in members}
    return EpochResult(epoch, metrics, node_id="n2").to_result()


def _final(members: list[dict]) -> dict:
    return PackResult(complete={m["number"]: 1 for m in members}, node_id="n2").to_result()


def _rows(bridge: OptunaBridge) -> dict[int, tuple[str, int]]:
    return {t.number: (t.state.name, t.user_attrs["restarts"]) for t in bridge.study.trials}


def test_a_pack_retried_before_its_first_report_counts_a_restart(bridge: OptunaBridge) -> None:
    config = TuneSide.of(bridge).searcher.suggest("a")
    members = config["members"]
    assert len(members) == 2
    TuneSide.of(bridge).callback.on_trial_recover(iteration=0, trials=[], trial=_tune_trial("a"))
    TuneSide.of(bridge).scheduler.on_trial_result(None, _tune_trial("a"), _report(members, 1, 0.6))
    TuneSide.of(bridge).searcher.on_trial_complete("a", _final(members))
    assert _rows(bridge) == {0: ("COMPLETE", 1), 1: ("COMPLETE", 1)}
    assert {t.user_attrs["node"] for t in bridge.study.trials} == {"n2"}


def test_epochs_without_a_retry_count_no_restart(bridge: OptunaBridge) -> None:
    members = TuneSide.of(bridge).searcher.suggest("a")["members"]
    trial = _tune_trial("a")
    for epoch in (1, 2, 3):
        TuneSide.of(bridge).scheduler.on_trial_result(None, trial, _report(members, epoch, 0.5 + epoch / 10))
    TuneSide.of(bridge).searcher.on_trial_complete("a", _final(members))
    assert _rows(bridge) == {0: ("COMPLETE", 0), 1: ("COMPLETE", 0)}
    assert [t.value for t in bridge.study.trials] == [pytest.approx(0.8)] * 2


def test_a_retry_after_a_member_closed_counts_only_the_open_ones(bridge: OptunaBridge) -> None:
    members = TuneSide.of(bridge).searcher.suggest("a")["members"]
    failed = EpochResult(1, failed={members[0]["number"]: "NaN loss"}).to_result()
    trial = _tune_trial("a")
    TuneSide.of(bridge).scheduler.on_trial_result(None, trial, failed)
    TuneSide.of(bridge).callback.on_trial_recover(iteration=0, trials=[], trial=trial)
    TuneSide.of(bridge).searcher.on_trial_complete("a", None, error=True)
    rows = _rows(bridge)
    assert rows == {0: ("FAIL", 0), 1: ("FAIL", 1)}
    assert bridge.study.trials[1].user_attrs["error"] == "trial process failed"


def test_the_prune_path_without_ray_answers_in_verdicts() -> None:
    # The pruner prunes below 0.7: a pack of two that reports 0.5 and 0.9 loses one member and
    # goes on; it stops when its other member completes (every member closed).
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(tiny_space(search={"num_samples": 3, "pack_size": 2}))
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.7))
    bridge = OptunaBridge(study, space, 3, Packer(study, space, pack_size=2, embedding_dim=16, num_models=6))
    config = bridge.suggest("a")
    assert isinstance(config, dict)
    low, high = (m["number"] for m in config["members"])
    report = EpochResult(1, {low: {"val_auc": 0.5}, high: {"val_auc": 0.9}}).to_result()
    assert bridge.on_result("a", report) is Verdict.CONTINUE
    assert study.trials[low].state.name == "PRUNED" and study.trials[high].state.name == "RUNNING"
    done = EpochResult(2, {high: {"val_auc": 0.95}}, complete={high: 2}).to_result()
    assert bridge.on_result("a", done) is Verdict.STOP
    assert study.trials[high].state.name == "COMPLETE" and study.trials[high].value == 0.9
    assert isinstance(bridge.suggest("b"), dict)  # the third trial
    assert bridge.suggest("c") is Verdict.FINISHED  # three asked of three


def test_a_run_whose_study_cannot_be_written_asks_no_more() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(tiny_space(search={"num_samples": 4, "pack_size": 2}))
    study = optuna.create_study(direction="maximize")
    bridge = OptunaBridge(study, space, 4, Packer(study, space, pack_size=2, embedding_dim=16, num_models=6))
    bridge.stop_run(OSError(errno.ENOSPC, "No space left on device"))
    assert bridge.suggest("a") is Verdict.FINISHED
    with pytest.raises(OSError, match="Permission"):  # not a disk's fault: a bug, raised
        bridge.stop_run(OSError(errno.EACCES, "Permission denied"))


def test_tune_hears_each_verdict_in_its_own_words(bridge: OptunaBridge) -> None:
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    side = TuneSide.of(bridge)
    members = side.searcher.suggest("a")["members"]
    word = side.scheduler.on_trial_result(None, _tune_trial("a"), _report(members, 1, 0.6))
    assert word == TrialScheduler.CONTINUE
    assert side.searcher.suggest("b") is not None
    assert side.searcher.suggest("c") == Searcher.FINISHED  # 4 asked in two packs of two


def test_the_bridge_imports_no_ray() -> None:
    code = (
        "import sys, search.driver.bridge; print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
