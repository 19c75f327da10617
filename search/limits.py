"""The ranges every user-given size and seed is checked against, in one place (the README's
Errors section lists them). A value outside its range is one line naming it and the range,
before anything is allocated or written."""

from __future__ import annotations

from typing import Any

from search.errors import UserError

SEED_MAX = 2**32 - 1  # numpy's and Optuna's seeds are unsigned 32-bit
MAX_SAMPLES = 1_000_000  # trials in a study
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 24
MAX_PACK = 4096  # trials fused into one model
MAX_ENSEMBLE = 1000  # ensemble picks and candidates
MAX_CONCURRENT = 100_000
MAX_TIME_BUDGET_S = 10**9

# Synthetic data: each size, and the float32 values it makes (about 4 GB at most).
SYNTHETIC_MAX = {"n_questions": 10_000_000, "n_models": 100_000, "dim": 65_536, "n_topics": 100_000}
SYNTHETIC_MAX_VALUES = 10**9


def check_int(value: Any, low: int, high: int, what: str) -> int:
    """``value`` as an int in [low, high]; else a UserError naming ``what`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"{what} must be an integer from {low:,} to {high:,}, got {value!r}")
    return value


def check_seed(value: Any, what: str) -> int:
    return check_int(value, 0, SEED_MAX, what)
