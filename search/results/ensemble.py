"""Ensembles of a run's routers (stacking): greedy selection with replacement on val (Caruana et
al.) among the best trials of every family and the baselines, the ensemble router and its
summary, and which trial routers to keep while the run goes."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from router_models import EnsembleModel, create_model, load_router
from router_models.probs import prob_logit
from search import metrics as M
from search.data import RouterData
from search.files.remote import exists, get_bytes
from search.files.rundir import trial_router_uri
from search.metrics.direction import Direction
from search.routing.inference import val_logits
from search.routing.offsets import margin_routing

Scorer = Callable[[torch.Tensor], float]


def scorer(
    y: torch.Tensor,
    mask: torch.Tensor,
    metric: str,
    cost: torch.Tensor | None = None,
    mean_cost: torch.Tensor | None = None,
) -> Scorer:
    """``metric`` of (averaged) probabilities on val, signed so that higher is better; val_aiq
    needs the split's ``cost`` and the ``mean_cost`` per LLM."""
    key = "loss" if metric == "train_loss" else metric.removeprefix("val_")
    direction = Direction.of(metric)

    def score(probs: torch.Tensor) -> float:
        logits = prob_logit(probs)
        value = M.evaluate_members(logits.unsqueeze(0), y, mask, cost, mean_cost)[0][key]
        return -direction.key(value) if math.isfinite(value) else -math.inf

    return score


def greedy_select(
    probs: Sequence[torch.Tensor],
    y: torch.Tensor,
    mask: torch.Tensor,
    metric: str,
    size: int,
    score: Scorer | None = None,
) -> list[int]:
    """Indices into ``probs`` (val probabilities of each candidate), with repetition.

    Start from the best candidate alone; then add, again and again, the candidate (any, also one
    already in) whose addition scores best on val, while that strictly improves the score and
    the ensemble has fewer than ``size`` picks. So the ensemble is never worse on val than the
    best single candidate.

    Raises:
        ValueError: With no candidates or ``size`` < 1.
    """
    if not probs or size < 1:
        raise ValueError(f"need candidates and a size >= 1, got {len(probs)} and {size}")
    score_of = score or scorer(y, mask, metric)
    scores = [score_of(p) for p in probs]
    chosen = [max(range(len(probs)), key=lambda i: scores[i])]
    total = probs[chosen[0]].double().clone()
    best = scores[chosen[0]]
    while len(chosen) < size:
        n = len(chosen) + 1
        trial = [(score_of(((total + p) / n).float()), i) for i, p in enumerate(probs)]
        value, pick = max(trial, key=lambda t: (t[0], -t[1]))
        if not value > best:
            break
        chosen.append(pick)
        total += probs[pick].double()
        best = value
    return chosen


Label = int | str  # a candidate: a trial's number, or a baseline's key


@dataclass
class Ensemble:
    model: EnsembleModel
    members: list[Label]  # distinct members (trial numbers, baseline keys), in the model's order
    weights: list[float]
    picks: int
    routing: dict[str, Any]
    val_score: float  # the search metric on val, ensemble
    best_single_val_score: float

    @property
    def trials(self) -> list[int]:
        """The member trials' numbers (baselines left out)."""
        return [n for n in self.members if isinstance(n, int)]


def _load(uri: str) -> tuple[Any, dict[str, Any]]:
    return load_router(io.BytesIO(get_bytes(uri)))


def load_trial_routers(storage: str, numbers: Sequence[int]) -> dict[Label, tuple[Any, dict[str, Any]]]:
    """The saved routers of those trials that have one on storage."""
    return {n: _load(trial_router_uri(storage, n)) for n in numbers if exists(trial_router_uri(storage, n))}


def build_ensemble(
    routers: dict[Label, tuple[Any, dict[str, Any]]], data: RouterData, metric: str, size: int
) -> tuple[Ensemble | None, str]:
    """Stacking: greedy selection with replacement (weights on val) among ``routers`` (trial
    numbers or baseline keys -> (model, info)); returns the ensemble, or None and why not (fewer
    than 2 candidates, or selection kept a single member: nothing gained on val)."""
    if len(routers) < 2:
        return None, f"fewer than 2 candidate routers ({len(routers)})"
    labels = list(routers)
    _, y, m = data.split("val")
    yt, mt = torch.from_numpy(y), torch.from_numpy(m)
    costs = (
        (torch.from_numpy(data.split_cost("val")), torch.from_numpy(data.mean_cost()))
        if data.has_costs
        else (None, None)
    )
    score = scorer(yt, mt, metric, *costs)
    probs = [torch.sigmoid(val_logits(routers[n][0], data)) for n in labels]
    picks = greedy_select(probs, yt, mt, metric, size, score)
    members = list(dict.fromkeys(labels[i] for i in picks))
    if len(members) < 2:
        return None, (
            f"selection kept one router ({_label(members[0])}): adding any of the {len(labels) - 1} other "
            f"candidates did not improve {metric} on val"
        )
    counts = [sum(labels[i] == n for i in picks) for n in members]
    configs = [routers[n][1]["config"]["pipeline_config"] for n in members]
    model = create_model(
        {"model_type": "ensemble", "model_config": {"members": configs, "weights": counts}},
        data.embedding_dim,
        data.num_models,
    )
    assert isinstance(model, EnsembleModel)
    for member, n in zip(model.members, members):
        member.load_state_dict(routers[n][0].state_dict())
    model.eval()
    logits = val_logits(model, data)
    ens = Ensemble(
        model=model,
        members=members,
        weights=list(model.weights),
        picks=len(picks),
        routing=margin_routing(logits, data),
        val_score=score(torch.sigmoid(logits)),
        best_single_val_score=max(score(p) for p in probs),
    )
    return ens, ""


def _label(n: Label) -> str:
    return f"trial {n}" if isinstance(n, int) else f"baseline {n}"
