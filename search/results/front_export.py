"""A multi-objective run's front as files: ``pareto.json`` and one router per point in the run
dir. Which trials are on the front, which point is exported and by what rule is
``search/study/objectives.py``'s (:data:`~search.study.objectives.PICK_RULE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from search.files.atomic import atomic_write_bytes
from search.files.remote import exists, get_bytes
from search.files.rundir import RunDir, trial_router_uri
from search.results.run_files import FrontRecord
from search.study.objectives import PICK_RULE


def write_front(
    run_dir: Path,
    storage: str,
    points: Sequence[FrozenTrial],
    space: Any,
    picked: int,
    weights: Sequence[float],
) -> dict[str, Any]:
    """Copy the router of each front point (``points``, ``Objectives.front``) into the run
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
    return FrontRecord(
        objectives=[
            {"metric": m, "mode": d} for m, d in zip(space.search.objectives, space.search.directions)
        ],
        rule=PICK_RULE,
        weights=dict(zip(space.search.objectives, weights)),
        picked=picked,
        front=rows,
    ).write(run_dir)
