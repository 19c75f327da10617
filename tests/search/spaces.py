"""Small spaces for tests: tiny synthetic data, few epochs, so a Ray run takes seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

TINY_DATA = {"synthetic": {"n_questions": 300, "n_models": 6, "dim": 16, "n_topics": 3, "seed": 2}}


def tiny_space(**overrides: Any) -> dict[str, Any]:
    space: dict[str, Any] = {
        "model_type": "mlp",
        "params": {
            "hidden_dims": {"choices": [[16], [32]]},
            "dropout": {"low": 0.0, "high": 0.3},
            "lr": {"low": 1.0e-4, "high": 3.0e-2, "log": True},
            "batch_size": 64,
            "epochs": 4,
        },
        "search": {
            "num_samples": 4,
            "metric": "val_auc",
            "sampler": {"type": "random"},
            "pruner": {"type": "none"},
            "max_concurrent_trials": 2,
            "seed": 0,
            "pack_size": 1,  # tests of packs ask for them
        },
        "resources": {"cpu": 1},
        "data": TINY_DATA,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(space.get(key), dict):
            space[key] = {**space[key], **value}
        else:
            space[key] = value
    return space


def write_space(path: Path, space: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def fake_routers(storage: str, count: int) -> None:
    """Trial routers 0..count-1 on ``storage``, as files that only need to exist."""
    from search.files.rundir import trial_router_uri

    for n in range(count):
        path = Path(trial_router_uri(storage, n))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"router")
