"""The messages between trainable and driver: each survives Tune's result dict unchanged, trial
numbers stay ints, and a malformed one is a clear error, not a silent miss."""

from __future__ import annotations

import json
import pickle

import pytest

from search.trial.protocol import (
    EPOCH_KEY,
    EpochResult,
    Member,
    PackFailed,
    PackResult,
    PackSpec,
    TrialSettings,
    decode,
)

MESSAGES = [
    EpochResult(
        3, {12: {"val_loss": 0.25, "val_auc": 0.75}, 4: {"val_loss": 0.5}}, {7: "diverged"}, "n", "cpu", 1.5
    ),
    EpochResult(1),
    PackResult({12: 3, 4: 1}, {7: "could not save its router: ENOSPC"}, 812.5, 3, "node-a"),
    PackResult(),
    PackFailed("RuntimeError: boom", "node-b"),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip_through_a_tune_result(message) -> None:
    result = message.to_result()
    # Tune keeps results as JSON-able scalars: every value is a str or a number
    assert all(isinstance(v, (str, int, float)) for v in result.values())
    back = decode(json.loads(json.dumps(result)))
    assert back == message and type(back) is type(message)
    for d in ("metrics", "failed", "complete"):
        assert all(isinstance(k, int) for k in getattr(back, d, {}))


def test_the_epoch_is_a_scalar_tune_can_read() -> None:
    assert EpochResult(5).to_result()["epoch"] == 5


def test_results_without_a_message_decode_to_none() -> None:
    assert decode(None) is None and decode({}) is None and decode({"epoch": 2, "done": False}) is None


def test_a_malformed_message_is_an_error_naming_it() -> None:
    with pytest.raises(ValueError, match="malformed pack message"):
        decode({EPOCH_KEY: json.dumps({"epoch": 1, "metrics": {"x": {}}, "failed": {}})})
    with pytest.raises(ValueError, match="malformed pack message"):
        decode({EPOCH_KEY: "not json"})


def test_a_pack_spec_round_trips_as_a_tune_config() -> None:
    spec = PackSpec(3, (Member(3, {"pipeline_config": {"model_type": "mlp"}}), Member(5, {"x": [1, 2]})))
    config = spec.to_config()
    assert config["pack"] == 3 and [m["number"] for m in config["members"]] == [3, 5]
    assert PackSpec.from_config(json.loads(json.dumps(config))) == spec


def test_trial_settings_pickle_as_tune_ships_them() -> None:
    settings = TrialSettings(
        control=None, cpus=2.0, gpu=None, seed=7, metric="val_auc", storage="/s", debug=True
    )
    assert pickle.loads(pickle.dumps(settings)) == settings
