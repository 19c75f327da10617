"""A multi-objective run's Pareto front: the completed trials on it, the routers kept while the
run goes, the point config.json takes, and ``pareto.json`` with one router per point.

The point a run exports (config.json, best_router.pt) is picked by a stated rule
(:data:`PICK_RULE`, ``metrics.pareto.pick``): each objective scaled over the front to 0 (the
front's worst) .. 1 (its best), weighted (1 each unless ``--pick`` says otherwise; an objective
``--pick`` leaves out weighs 0), summed; the highest sum wins, ties go to the better first
objective, then to the lower trial number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.files.atomic import atomic_write_bytes, write_json
from search.files.remote import delete, exists, get_bytes
from search.files.rundir import RunDir, trial_router_uri
from search.metrics.direction import Direction
from search.metrics.pareto import front, pick

PICK_RULE = (
    "highest weighted sum of the objectives, each scaled over the front to 0 (its worst) .. 1 "
    "(its best); ties to the better first objective, then the lower trial number"
)


def front_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The COMPLETE trials no other COMPLETE trial dominates, in trial order."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    done = [t for t in complete if t.values is not None]
    return [done[i] for i in front([t.values for t in done], Direction.each_of_study(study))]


def pick_weights(objectives: Sequence[str], weights: Mapping[str, float] | None) -> list[float]:
    """One weight per objective: ``weights``' (0 for one it leaves out), or 1 each."""
    if weights is None:
        return [1.0] * len(objectives)
    return [float(weights.get(name, 0.0)) for name in objectives]


def picked_trial(points: Sequence[FrozenTrial], study: optuna.Study, weights: Sequence[float]) -> FrozenTrial:
    """The front point the run exports, by :data:`PICK_RULE`, of the study's front ``points``
    (:func:`front_trials`, not empty)."""
    return points[pick([t.values for t in points], Direction.each_of_study(study), weights)]


class FrontKeeper:
    """Keeps the routers of the front of the completed trials on storage while the run goes; a
    router whose trial a newer one dominates is deleted at once.

    Args:
        storage: Where trial routers are saved.
        directions: One per objective.
        kept: Trials (number, values) whose routers are already kept (a resumed run).
    """

    def __init__(
        self, storage: str, directions: Sequence[Direction], kept: Sequence[tuple[int, Sequence[float]]] = ()
    ) -> None:
        if not directions:
            raise ValueError("need at least one direction")
        self.storage = storage
        self.directions = list(directions)
        self.kept: dict[int, list[float]] = {}
        for number, values in kept:
            self.add(number, values)

    def add(self, number: int, values: Sequence[float]) -> None:
        """A trial completed with ``values``: keep its router while no other kept one dominates it."""
        if len(values) != len(self.directions):
            raise ValueError(f"need {len(self.directions)} values, got {list(values)}")
        self.kept[number] = [float(v) for v in values]
        numbers = list(self.kept)
        on = {numbers[i] for i in front([self.kept[n] for n in numbers], self.directions)}
        for n in numbers:
            if n not in on:
                del self.kept[n]
                delete(trial_router_uri(self.storage, n))

    @property
    def numbers(self) -> list[int]:
        """Kept trials, in trial order."""
        return sorted(self.kept)


def write_front(
    run_dir: Path,
    storage: str,
    points: Sequence[FrozenTrial],
    space: Any,
    picked: int,
    weights: Sequence[float],
) -> dict[str, Any]:
    """Copy the router of each front point (``points``, :func:`front_trials`) into the run
    dir's ``pareto/`` (removing routers of points no longer on it) and write ``pareto.json``;
    returns what it holds."""
    rd = RunDir(run_dir)
    rd.pareto_routers.mkdir(parents=True, exist_ok=True)
    names = {t.number: RunDir.pareto_router_name(t.number) for t in points}
    for old in rd.pareto_routers.glob("trial_*.pt"):
        if f"{RunDir.PARETO_ROUTERS}/{old.name}" not in names.values():
            old.unlink()
    rows = []
    for t in points:
        uri = trial_router_uri(storage, t.number)
        router = names[t.number] if exists(uri) else None
        if router is not None:
            atomic_write_bytes(rd.path / router, get_bytes(uri))
        rows.append(
            {
                "trial": t.number,
                "values": dict(zip(space.search.objectives, t.values)),
                "model_type": t.user_attrs.get("model_type"),
                "params": t.params,
                "best_epoch": t.user_attrs.get("best_epoch"),
                "router": router,
            }
        )
    summary = {
        "objectives": [
            {"metric": m, "mode": d} for m, d in zip(space.search.objectives, space.search.directions)
        ],
        "rule": PICK_RULE,
        "weights": dict(zip(space.search.objectives, weights)),
        "picked": picked,
        "front": rows,
    }
    write_json(rd.pareto, summary)
    return summary
