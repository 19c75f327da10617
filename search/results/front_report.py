"""The report's pages of a multi-objective run: the Pareto plot, the front in words, and the
weights its exported point was picked with (``report.py`` lays them out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.files.atomic import save_png
from search.files.rundir import RunDir
from search.results.run_files import FrontRecord
from search.study.dominance import VECTORS
from search.study.objectives import PICK_RULE


def front_weights(run_dir: Path) -> dict[str, float] | None:
    """The weights that picked a multi-objective run's exported point, as its pareto.json
    records them; None (1 each) when the run has not exported one."""
    record = FrontRecord.read(run_dir)
    return record.weights if record is not None else None


def pareto_plot(
    study: optuna.Study, space: Any, out: Path, front: list[optuna.trial.FrozenTrial], picked: int
) -> tuple[str, str]:
    """The primary objective against each other one: every completed trial, the front drawn
    through its points, the picked one starred, pruned trials at their last vector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(space.search.objectives)
    p = space.search.primary_index
    others = [i for i in range(len(names)) if i != p]
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values is not None]
    on = {t.number for t in front}
    pruned = []
    for t in trials:
        vectors = t.user_attrs.get(VECTORS, {}) if t.state == TrialState.PRUNED else {}
        if vectors:
            pruned.append(vectors[max(vectors, key=int)])
    fig, axes = plt.subplots(1, len(others), figsize=(6 * len(others), 4.5), squeeze=False)
    for ax, i in zip(axes[0], others):
        ax.scatter(
            [v[i] for v in pruned],
            [v[p] for v in pruned],
            marker="x",
            s=14,
            color="tab:red",
            alpha=0.4,
            label="pruned (last values)",
        )
        rest = [t for t in done if t.number not in on]
        ax.scatter(
            [t.values[i] for t in rest], [t.values[p] for t in rest], s=16, color="gray", label="complete"
        )
        line = sorted(front, key=lambda t: t.values[i])
        ax.plot(
            [t.values[i] for t in line],
            [t.values[p] for t in line],
            "o-" if len(names) == 2 else "o",  # over more objectives a projection is no line
            color="tab:blue",
            ms=5,
            label="Pareto front" if len(names) == 2 else f"Pareto front (over all {len(names)} objectives)",
        )
        for t in line:
            ax.annotate(
                str(t.number),
                (t.values[i], t.values[p]),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
            )
        chosen = [t for t in done if t.number == picked]
        ax.scatter(
            [t.values[i] for t in chosen],
            [t.values[p] for t in chosen],
            marker="*",
            s=160,
            color="tab:orange",
            zorder=5,
            label=f"picked (trial {picked})",
        )
        if names[i] == "param_count":
            ax.set_xscale("log")
        directions = space.search.directions
        ax.set(
            xlabel=f"{names[i]} ({directions[i]})",
            ylabel=f"{names[p]} ({directions[p]})",
            title="Pareto front (val)",
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, RunDir(out).plot("pareto_front"))
    plt.close(fig)
    return "Pareto front", RunDir.plot_name("pareto_front")


def front_text(space: Any, front: list[optuna.trial.FrozenTrial], picked: int) -> str:
    points = "; ".join(
        f"{'**' if t.number == picked else ''}trial {t.number}{'**' if t.number == picked else ''}: "
        + ", ".join(f"{m} {v:.4g}" for m, v in zip(space.search.objectives, t.values))
        for t in front
    )
    return (
        f"The front: the {len(front)} completed trials that no other completed trial dominates (is "
        f"as good in every objective and better in one, on val), each with its router in "
        f"`{RunDir.PARETO_ROUTERS}/`: "
        f"{points}. The run exports trial {picked} (config.json, {RunDir.BEST_ROUTER}), by the "
        f"{PICK_RULE}. A trial is pruned at a rung when enough of the trials there dominate it "
        "(README, Several objectives)."
    )
