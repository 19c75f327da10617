"""Greedy ensemble selection and the routers a run keeps for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.metrics.direction import Direction
from search.results.ensemble import RouterKeeper, greedy_select, scorer
from search.rundir import trial_router_uri
from search.storage import exists
from tests.search.spaces import fake_routers


def _labels(n: int = 400, m: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, m, generator=gen) < 0.5).float()
    mask = torch.ones(n, m, dtype=torch.bool)
    return y, mask, gen


def _noisy(y: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    """Probabilities that know y, blurred by independent noise."""
    return torch.sigmoid((y * 2 - 1) * 1.0 + noise * torch.randn(y.shape, generator=gen))


def test_selection_starts_from_the_best_and_never_worsens_val() -> None:
    y, mask, gen = _labels()
    probs = [_noisy(y, s, gen) for s in (3.0, 2.0, 2.2, 2.5, 6.0)]
    picks = greedy_select(probs, y, mask, "val_auc", size=8)
    score = scorer(y, mask, "val_auc")
    singles = [score(p) for p in probs]
    assert picks[0] == 1  # the best alone
    ensemble = torch.stack([probs[i] for i in picks]).mean(0)
    assert score(ensemble) >= max(singles)
    # each pick improved val strictly: replaying the picks, the score rises at every step
    running = [score(torch.stack([probs[i] for i in picks[: k + 1]]).mean(0)) for k in range(len(picks))]
    assert all(b > a for a, b in zip(running, running[1:]))
    assert 4 not in picks  # the very noisy one never helps


@pytest.mark.parametrize("metric", ["val_loss", "val_auc"])
def test_selection_picks_with_replacement(metric: str) -> None:
    y, mask, gen = _labels(n=1000, seed=3)
    strong = _noisy(y, 1.5, gen)
    weaker = [_noisy(y, 2.5, gen) for _ in range(2)]
    picks = greedy_select([strong, *weaker], y, mask, metric, size=8)
    assert set(picks) == {0, 1, 2}  # the weaker ones add what the strong one lacks
    assert picks.count(0) >= 2  # and the strong one weighs more by being picked again
    assert len(picks) <= 8


def test_selection_of_one_candidate_and_bad_arguments() -> None:
    y, mask, gen = _labels()
    assert greedy_select([_noisy(y, 1.0, gen)], y, mask, "val_auc", 5) == [0]
    with pytest.raises(ValueError, match="need candidates and a size >= 1"):
        greedy_select([], y, mask, "val_auc", 5)


def test_keeper_keeps_the_best_routers_and_deletes_the_rest(tmp_path: Path) -> None:
    storage = str(tmp_path)
    fake_routers(storage, 6)
    keeper = RouterKeeper(storage, keep=3, direction=Direction("max"), kept=[(0, 0.5), (1, 0.9)])
    for n, value in ((2, 0.7), (3, 0.1), (4, 0.95), (5, 0.8)):
        keeper.add(n, value)
    assert keeper.numbers == [4, 1, 5]
    assert [exists(trial_router_uri(storage, n)) for n in range(6)] == [False, True, False, False, True, True]
    low = RouterKeeper(storage, keep=1, direction=Direction("min"), kept=[(1, 0.9), (5, 0.8)])
    assert low.numbers == [5]
