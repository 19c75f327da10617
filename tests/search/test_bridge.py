"""The bridge between Tune and the study, driven by hand: no Ray, no processes."""

from __future__ import annotations

import optuna
import pytest

from search.driver.bridge import OptunaBridge
from search.driver.packer import Packer
from search.messages import EpochResult, PackResult
from search.space import parse_space
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
    config = bridge.searcher.suggest("a")
    members = config["members"]
    assert len(members) == 2
    bridge.callback.on_trial_recover(iteration=0, trials=[], trial=_tune_trial("a"))
    bridge.scheduler.on_trial_result(None, _tune_trial("a"), _report(members, 1, 0.6))
    bridge.searcher.on_trial_complete("a", _final(members))
    assert _rows(bridge) == {0: ("COMPLETE", 1), 1: ("COMPLETE", 1)}
    assert {t.user_attrs["node"] for t in bridge.study.trials} == {"n2"}


def test_epochs_without_a_retry_count_no_restart(bridge: OptunaBridge) -> None:
    members = bridge.searcher.suggest("a")["members"]
    trial = _tune_trial("a")
    for epoch in (1, 2, 3):
        bridge.scheduler.on_trial_result(None, trial, _report(members, epoch, 0.5 + epoch / 10))
    bridge.searcher.on_trial_complete("a", _final(members))
    assert _rows(bridge) == {0: ("COMPLETE", 0), 1: ("COMPLETE", 0)}
    assert [t.value for t in bridge.study.trials] == [pytest.approx(0.8)] * 2


def test_a_retry_after_a_member_closed_counts_only_the_open_ones(bridge: OptunaBridge) -> None:
    members = bridge.searcher.suggest("a")["members"]
    failed = EpochResult(1, failed={members[0]["number"]: "NaN loss"}).to_result()
    trial = _tune_trial("a")
    bridge.scheduler.on_trial_result(None, trial, failed)
    bridge.callback.on_trial_recover(iteration=0, trials=[], trial=trial)
    bridge.searcher.on_trial_complete("a", None, error=True)
    rows = _rows(bridge)
    assert rows == {0: ("FAIL", 0), 1: ("FAIL", 1)}
    assert bridge.study.trials[1].user_attrs["error"] == "trial process failed"
