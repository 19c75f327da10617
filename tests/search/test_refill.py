"""Refill: new trials take the slots a running pack's members free, in the trainer and the
bridge; each keeps its own trial semantics (own epochs from 1, own result, own row)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
import torch
from ray.tune.search import Searcher

from search.data import load_data
from search.driver.bridge import OptunaBridge
from search.driver.packer import Packer
from search.driver.tune_side import TuneSide
from search.errors import SpaceError
from search.space import parse_space
from search.trial.protocol import EpochResult, PackResult
from search.trial.train import EpochReport, Joiner, train_pack, train_router
from tests.search.spaces import tiny_space
from tests.search.test_packs import DATA, cfg


@pytest.fixture(scope="module")
def data():
    return load_data(DATA)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_joiner_trains_from_epoch_one_as_it_would_alone(data) -> None:
    reports: list[EpochReport] = []
    done: list[tuple[int, int, str]] = []  # (member, pack epoch when said, status)
    queue = {2: [Joiner(cfg(hidden=(32, 8), lr=3e-3), 7, "trial 9")]}  # joins after pack epoch 2

    def report(rep: EpochReport) -> list[int]:
        reports.append(rep)
        return [1] if rep.epoch == 2 else []  # member 1 is stopped at epoch 2: its slot frees

    def refill() -> list[Joiner]:
        return queue.pop(reports[-1].epoch, [])

    results = train_pack(
        [cfg(), cfg(lr=3e-3)],
        data,
        seeds=[1, 2],
        report=report,
        refill=refill,
        metric="val_auc",
        done=lambda k, r: done.append((k, reports[-1].epoch, r.status)),
    )
    assert [(r.status, r.epochs_run) for r in results] == [("complete", 4), ("stopped", 2), ("complete", 4)]
    # the pack ran 6 epochs: member 0 epochs 1-4, the joiner (index 2) its own epochs 1-4 from pack epoch 3
    assert [sorted(r.metrics) for r in reports] == [[0, 1], [0, 1], [0, 2], [0, 2], [2], [2]]
    assert [r.steps for r in reports] == [
        {0: 1, 1: 1},
        {0: 2, 1: 2},
        {0: 3, 2: 1},
        {0: 4, 2: 2},
        {2: 3},
        {2: 4},
    ]
    # a member that finished is handed over at once, not when the pack ends
    assert done == [(0, 4, "complete"), (2, 6, "complete")]
    alone = train_router(cfg(hidden=(32, 8), lr=3e-3), data, seed=7, metric="val_auc")
    assert results[2].best_epoch == alone.best_epoch and results[2].history == alone.history
    assert _same_weights(results[2].model, alone.model)  # its own init, batches and optimizer


def test_a_joiner_that_does_not_build_fails_alone_in_the_next_report(data) -> None:
    reports: list[EpochReport] = []
    joiners = [Joiner(cfg(dropout=1.5), 3, "trial 5")]

    def report(rep: EpochReport) -> list[int]:
        reports.append(rep)
        return []

    results = train_pack(
        [cfg()], data, seeds=[1], report=report, refill=lambda: [joiners.pop()] if joiners else []
    )
    assert [r.status for r in results] == ["complete", "failed"]
    assert "ConfigError" in results[1].error and "dropout" in results[1].error
    assert reports[1].failed.keys() == {1} and len(reports) == 4


class _Control:
    """The control actor's ``decide``, recorded (the bridge calls ``decide.remote``)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[int], list[dict[str, Any]]]] = []
        control = self

        class _Decide:
            def remote(self, pack: str, epoch: int, closed: list[int], joined: list[dict[str, Any]]) -> None:
                control.calls.append((pack, epoch, closed, joined))

        self.decide = _Decide()


def _bridge(num_samples: int, **search: Any) -> tuple[OptunaBridge, _Control]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space(
        tiny_space(search={"num_samples": num_samples, "pack_size": 2, "reproducible": False, **search})
    )
    study = optuna.create_study(direction="maximize")
    packer = Packer(study, space, pack_size=2, embedding_dim=16, num_models=6)
    control = _Control()
    return OptunaBridge(study, space, num_samples, packer, control=control, refill=True), control


def _tune(trial_id: str) -> Any:
    return type("TuneTrial", (), {"trial_id": trial_id})()


def test_the_bridge_refills_freed_slots_with_new_trials() -> None:
    bridge, control = _bridge(5)
    members = TuneSide.of(bridge).searcher.suggest("a")["members"]
    first, second = (m["number"] for m in members)
    # epoch 1: the second member fails; its slot takes a new trial with the pack's structure
    TuneSide.of(bridge).scheduler.on_trial_result(
        None, _tune("a"), EpochResult(1, {first: {"val_auc": 0.6}}, {second: "NaN loss"}).to_result()
    )
    ((_, epoch, closed, joined),) = control.calls
    assert epoch == 1 and closed == [second] and [j["number"] for j in joined] == [2]
    study = bridge.study
    assert joined[0]["config"] == bridge.space.trial_config(study.trials[2].params)
    assert study.trials[2].user_attrs["pack"] == first and bridge.asked == 3
    # epoch 4: the first member finishes (4 epochs): its slot frees too; the joiner is at its 3rd
    for e in (2, 3, 4):
        steps = {2: e - 1}
        metrics = {first: {"val_auc": 0.6 + e / 100}, 2: {"val_auc": 0.5 + e / 100}}
        TuneSide.of(bridge).scheduler.on_trial_result(
            None, _tune("a"), EpochResult(e, metrics, steps=steps).to_result()
        )
    assert [c[1] for c in control.calls] == [1, 2, 3, 4]
    assert [j["number"] for j in control.calls[-1][3]] == [3]
    assert [len(c[3]) for c in control.calls[1:3]] == [0, 0]  # no slot freed at epochs 2, 3
    # the first member's router was saved after epoch 4: said in the next report, it is COMPLETE
    TuneSide.of(bridge).scheduler.on_trial_result(
        None,
        _tune("a"),
        EpochResult(
            5, {2: {"val_auc": 0.6}, 3: {"val_auc": 0.5}}, steps={2: 4, 3: 1}, complete={first: 4}
        ).to_result(),
    )
    assert study.trials[first].state.name == "COMPLETE" and study.trials[first].value == pytest.approx(0.64)
    assert [j["number"] for j in control.calls[-1][3]] == [4]  # trial 2 finished: the last of 5
    assert bridge.asked == 5
    # the joiner's intermediate values are at its own epochs
    assert sorted(study.trials[2].intermediate_values) == [1, 2, 3, 4]
    # the pack is stopped from outside: trial 4, which never reported, ran no epoch
    TuneSide.of(bridge).searcher.on_trial_complete("a", PackResult({first: 4, 2: 3, 3: 1}, {}).to_result())
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "FAIL"]
    assert TuneSide.of(bridge).searcher.suggest("b") == Searcher.FINISHED


def test_no_refill_without_trials_left() -> None:
    bridge, control = _bridge(2)
    members = TuneSide.of(bridge).searcher.suggest("a")["members"]
    first, second = (m["number"] for m in members)
    TuneSide.of(bridge).scheduler.on_trial_result(
        None, _tune("a"), EpochResult(1, {first: {"val_auc": 0.6}}, {second: "NaN loss"}).to_result()
    )
    assert control.calls[0][3] == [] and bridge.asked == 2


def test_refill_on_a_reproducible_search_is_refused_in_one_line() -> None:
    with pytest.raises(SpaceError, match=r"search.refill: true needs search.reproducible: false"):
        parse_space(tiny_space(search={"refill": True}))
    with pytest.raises(ValueError, match="refill needs a control actor and an unordered search"):
        space = parse_space(tiny_space())
        study = optuna.create_study(direction="maximize")
        OptunaBridge(study, space, 2, Packer(study, space, 2, 16, 6), refill=True)


def test_member_dicts_round_trip_through_the_control_message() -> None:
    bridge, control = _bridge(3)
    members = TuneSide.of(bridge).searcher.suggest("a")["members"]
    TuneSide.of(bridge).scheduler.on_trial_result(
        None, _tune("a"), EpochResult(1, {members[0]["number"]: {"val_auc": 0.6}}, {1: "x"}).to_result()
    )
    (joined,) = control.calls[0][3]
    assert set(joined) == {"number", "config"}
    assert joined["config"]["pipeline_config"]["model_type"] == "mlp"


@pytest.mark.slow
def test_a_refilled_search_with_data_as_fidelity_runs_each_trial_once_in_fewer_packs(
    tmp_path, capsys
) -> None:
    from router_models import load_router
    from search.__main__ import main
    from search.files.rundir import RunDir
    from search.space import load_space
    from search.study.store import open_study
    from tests.search.spaces import write_space

    space = tiny_space(
        params={"epochs": 6},
        search={
            "num_samples": 12,
            "pack_size": 4,
            "max_concurrent_trials": 1,
            "reproducible": False,
            "refill": True,  # auto refills GPU packs only
            "ensemble": {"size": 0},
            "pruner": {"type": "successive_halving", "min_resource": 1, "reduction_factor": 2},
            "fidelity": {"resource": "data", "min_fraction": 0.25},
        },
    )
    path, out = write_space(tmp_path / "run.yaml", space), tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--export", str(tmp_path / "c.json")]) == 0
    assert "packs of up to 4 refilled" in capsys.readouterr().out
    study = open_study(out, load_space(path))
    trials = study.trials
    assert len(trials) == 12 and {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}
    packs: dict[int, list[int]] = {}
    for t in trials:
        packs.setdefault(t.user_attrs["pack"], []).append(t.number)
        # every member counts its own epochs from 1, a joiner too
        assert sorted(t.intermediate_values) == list(range(1, t.user_attrs["epochs_run"] + 1))
    assert len(packs) < 3 and max(len(p) for p in packs.values()) > 4  # slots were refilled
    complete = {t.number: t for t in trials if t.state.name == "COMPLETE"}
    assert complete and all(t.user_attrs["epochs_run"] == 6 for t in complete.values())
    _, info = load_router(RunDir(out).best_router)
    best = max(complete.values(), key=lambda t: t.value)
    assert info["metadata"]["trial_number"] == best.number
    assert info["metadata"]["best_value"] == pytest.approx(best.value)
    n_train = int(0.8 * 300)
    schedule = study.user_attrs["fidelity"]["train_questions"]
    assert study.user_attrs["fidelity"]["resource"] == "data"
    assert schedule[0] < schedule[1] < schedule[-1] and schedule[-1] >= n_train - 2


def test_the_control_keeps_who_joined_for_a_pack_restarted_after_its_node_died() -> None:
    import asyncio

    from search.driver.control import PackControl

    async def story() -> tuple[dict, dict, dict]:
        control = PackControl()
        await control.decide("a", 1, [3], [{"number": 5, "config": {"x": 1}}])
        first = await control.wait("a", 1, timeout=1.0)
        await control.decide("a", 2, [5], [{"number": 6, "config": {"x": 2}}])
        late = await control.wait("a", 3, timeout=0.05)  # epoch 3 is not decided: the roster so far
        return first, late, await control.roster("b")

    first, late, other = asyncio.run(story())
    assert first == {"closed": [3], "joined": [{"number": 5, "config": {"x": 1}}]}
    assert late["closed"] == [3, 5] and [j["number"] for j in late["joined"]] == [5, 6]
    assert other == {"closed": [], "joined": []}


@pytest.mark.parametrize(
    ("refill", "reproducible", "pack_size", "on_gpu", "expected"),
    [
        ("auto", False, 8, True, True),  # a GPU pack left with a survivor wastes the chip
        ("auto", False, 8, False, False),  # a CPU pack is bound by arithmetic: no gain measured
        ("auto", True, 8, True, False),  # a reproducible search does not depend on timing
        ("auto", False, 1, True, False),  # a pack of one: Tune starts the next trial
        (True, False, 8, False, True),
        (False, False, 8, True, False),
    ],
)
def test_refill_auto_is_on_for_unordered_gpu_packs(refill, reproducible, pack_size, on_gpu, expected) -> None:
    from search.driver.plan import uses_refill

    space = parse_space(tiny_space(search={"refill": refill, "reproducible": reproducible}))
    assert uses_refill(space.search, pack_size, on_gpu) is expected
