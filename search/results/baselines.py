"""The baselines a run's routers are measured against, as routers: the single best LLM, the best
LLM per task and kNN, each fitted on train (kNN's k and weighting tuned on val) and saved as a
router file that ``search route``, ``search serve``, ``Router`` and budgets use like any other.

- single best: ``group_mean`` with ``prior: none``, ``prior_strength: 0`` (each LLM's mean
  score on train; the best one for every query);
- best per task: ``group_mean`` with ``prior: task``, ``prior_strength: 0`` (each task's best
  LLM on train; a query without a task takes the task of the nearest task centroid);
- kNN: ``knn`` with ``prior: none``, ``prior_strength: 0``: each LLM's mean score over the k
  most similar train questions (cosine), uniform or similarity-weighted, the k and weighting
  with the best val routing (the simplest on ties: uniform first, then the smallest k).

They route plainly (zero offsets): a file reproduces its row of the routing table exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router_models import BaseModel
from search import metrics as M
from search.data import RouterData
from search.routing.inference import val_logits
from search.routing.offsets import plain_routing
from search.trial.config import Fitter, build_model

SINGLE_BEST, TASK_BEST, KNN = "single_best", "task_best", "knn"
BASELINES = (SINGLE_BEST, TASK_BEST, KNN)  # simplest first: the order of preference on val ties
K_GRID = (5, 10, 20, 50, 100, 200, 400)
WEIGHTINGS: tuple[tuple[str, float], ...] = (
    ("uniform", 0.05),
    ("similarity", 0.02),
    ("similarity", 0.05),
    ("similarity", 0.1),
)


@dataclass
class Baseline:
    """One baseline router: its key (``single_best``, ``task_best``, ``knn``), its name in the
    routing table, the fitted model and its routing block."""

    key: str
    name: str
    model: BaseModel
    routing: dict[str, Any] = field(default_factory=dict)


def _fitted(model_type: str, model_config: dict[str, Any], data: RouterData, fitter: Fitter) -> BaseModel:
    model = build_model({"model_type": model_type, "model_config": model_config}, data)
    fitter.fit(model)
    return model.eval()


def knn_baseline(
    data: RouterData,
    grid: tuple[int, ...] = K_GRID,
    weightings: tuple[tuple[str, float], ...] = WEIGHTINGS,
    fitter: Fitter | None = None,
) -> tuple[BaseModel, str]:
    """The kNN router with the best val routing over ``grid`` x ``weightings`` (the first on
    ties), and how it is described."""
    fitter = fitter or Fitter(data)
    _, y, m = data.split("val")
    best: tuple[float, BaseModel, str] | None = None
    for weighting, temperature in weightings:
        for k in grid:
            model = _fitted(
                "knn",
                {"k": k, "weighting": weighting, "temperature": temperature, "prior_strength": 0.0},
                data,
                fitter,
            )
            acc = M.route_acc(val_logits(model, data), y, m)
            if best is None or acc > best[0]:
                how = f"k={k}" + (
                    f", similarity-weighted T={temperature:g}" if weighting == "similarity" else ""
                )
                best = (acc, model, how)
    assert best is not None
    return best[1], best[2]


def baselines(data: RouterData) -> list[Baseline]:
    """The baseline routers of ``data``, fitted on train (kNN tuned on val), simplest first;
    best per task only when the data has tasks."""
    fitter = Fitter(data)
    single = _fitted("group_mean", {"prior_strength": 0.0}, data, fitter)
    best = data.single_best()
    out = [Baseline(SINGLE_BEST, f"single best LLM ({data.model_names[best]})", single)]
    if data.task_names and data.tasks is not None:
        per_task = _fitted("group_mean", {"prior": "task", "prior_strength": 0.0}, data, fitter)
        out.append(Baseline(TASK_BEST, "best LLM per task (on train)", per_task))
    knn, how = knn_baseline(data, fitter=fitter)
    out.append(Baseline(KNN, f"kNN, cosine, {how} (tuned on val)", knn))
    for b in out:
        b.routing = plain_routing(val_logits(b.model, data), data, f"plain argmax (baseline: {b.name})")
    return out
