"""Greedy ensemble selection and the routers a run keeps for it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from search.files.remote import exists
from search.files.rundir import trial_router_uri
from search.metrics.direction import Direction
from search.results.ensemble import greedy_select, scorer
from search.study.keepers import RouterKeeper
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
    keeper = RouterKeeper(storage, keep=3, direction=Direction("max"), kept=[(0, 0.5, ""), (1, 0.9, "")])
    for n, value in ((2, 0.7), (3, 0.1), (4, 0.95), (5, 0.8)):
        keeper.add(n, value)
    assert keeper.numbers == [4, 1, 5]
    assert [exists(trial_router_uri(storage, n)) for n in range(6)] == [False, True, False, False, True, True]
    low = RouterKeeper(storage, keep=1, direction=Direction("min"), kept=[(1, 0.9, ""), (5, 0.8, "")])
    assert low.numbers == [5]


def test_keeper_keeps_the_best_of_each_model_type(tmp_path: Path) -> None:
    # stacking selects among every family: a family whose trials score lower keeps its best too
    storage = str(tmp_path)
    fake_routers(storage, 6)
    keeper = RouterKeeper(storage, keep=2, direction=Direction("max"))
    for n, value, group in (
        (0, 0.9, "mlp"),
        (1, 0.8, "mlp"),
        (2, 0.85, "mlp"),
        (3, 0.5, "knn"),
        (4, 0.6, "knn"),
        (5, 0.4, "knn"),
    ):
        keeper.add(n, value, group)
    assert keeper.numbers == [0, 2, 4, 3]
    assert [exists(trial_router_uri(storage, n)) for n in range(6)] == [True, False, True, True, True, False]


def _stack_data():
    import dataclasses

    import numpy as np

    from search.data import load_data

    data = load_data("synthetic:n_questions=600,n_models=4,dim=8,n_topics=2,seed=5")
    tasks = (np.arange(len(data.X)) % 2).astype(np.int32)
    return dataclasses.replace(data, tasks=tasks, task_names=["a", "b"])


def test_stacking_weighs_trials_and_baselines_by_their_picks_on_val() -> None:
    from router_models import router_config
    from search.results.baselines import baselines
    from search.results.ensemble import build_ensemble
    from search.routing.inference import val_logits
    from search.trial.train import train_router

    data = _stack_data()
    trial = train_router(
        {
            "pipeline_config": {
                "model_type": "mlp",
                "model_config": {"hidden_dims": [8]},
                "train_config": {"epochs": 3},
            }
        },
        data,
        metric="val_auc",
    ).model
    refs = baselines(data)
    routers = {7: (trial, {"config": router_config(trial)})}
    routers.update({b.key: (b.model, {"config": router_config(b.model)}) for b in refs})
    ens, why = build_ensemble(routers, data, "val_auc", size=6)
    labels = list(routers)
    _, y, m = data.split("val")
    probs = [torch.sigmoid(val_logits(model, data)) for model, _ in routers.values()]
    picks = greedy_select(probs, torch.from_numpy(y), torch.from_numpy(m), "val_auc", 6)
    members = list(dict.fromkeys(labels[i] for i in picks))
    assert len(members) >= 2 and ens is not None and why == ""
    assert ens.members == members and ens.picks == len(picks)
    assert ens.weights == pytest.approx([sum(labels[i] == n for i in picks) / len(picks) for n in members])
    assert ens.trials == [n for n in members if isinstance(n, int)]
    # the ensemble's val probabilities are its members' weighted mean
    mean = sum(w * probs[labels.index(n)] for n, w in zip(members, ens.weights))
    assert torch.allclose(torch.sigmoid(val_logits(ens.model, data)), mean, atol=1e-5)


def test_no_ensemble_says_why() -> None:
    from router_models import router_config
    from search.results.baselines import baselines
    from search.results.ensemble import build_ensemble

    data = _stack_data()
    single = baselines(data)[0]
    one = {single.key: (single.model, {"config": router_config(single.model)})}
    assert build_ensemble(one, data, "val_auc", 4) == (None, "fewer than 2 candidate routers (1)")
    twice = {**one, 3: (single.model, {"config": router_config(single.model)})}
    ens, why = build_ensemble(twice, data, "val_auc", 4)
    assert ens is None
    assert why == (
        "selection kept one router (baseline single_best): adding any of the 1 other candidates did not "
        "improve val_auc on val"
    )
