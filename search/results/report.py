"""``search report RUN_DIR``: report.md and PNG plots from a run dir (finished, interrupted or
resumed): optimization history, intermediate values with pruned trials marked, parameter
importances, and the routing table (best router vs single best vs kNN vs oracle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from search.data import load_data
from search.errors import UserError
from search.files.atomic import atomic_write_bytes, save_png
from search.files.paths import check_dir_target
from search.files.remote import exists
from search.files.rundir import RunDir, trial_router_uri
from search.log import logger
from search.metrics.direction import Direction
from search.results.export import RouterEntry, run_routers
from search.results.front_report import front_text, front_weights, pareto_plot
from search.results.records import RunInfo, read_object, read_run_info
from search.results.routing_table import run_routing_table
from search.space import load_space
from search.study.objectives import objectives_of
from search.study.store import open_study

log = logger("results")


def _routers(run_dir: Path, info: RunInfo, chosen: optuna.trial.FrozenTrial | None) -> list[RouterEntry]:
    """The run's routers: from its config.json when it finished, else the exported trial's
    (``chosen``, None when no trial completed) on storage."""
    if (RunDir(run_dir).config).exists():
        routers = run_routers(run_dir)
        if routers:
            return routers
    if chosen is None:
        return []
    best = chosen.number
    uri = trial_router_uri(info.storage or str(run_dir), best)
    return [RouterEntry(f"best trial {best}", Path(uri))] if "://" not in uri and exists(uri) else []


def importance_evaluator() -> tuple[optuna.importance.BaseImportanceEvaluator, str]:
    """fANOVA (Optuna's default) where scikit-learn is installed, else PED-ANOVA, which needs
    nothing more: the report's importances never depend on an optional package."""
    import importlib.util
    import warnings

    if importlib.util.find_spec("sklearn") is not None:
        return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"


def _plots(study: optuna.Study, out: Path, space: Any) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = study.get_trials(deepcopy=False)
    objectives = objectives_of(study, space.search)
    metric = space.search.primary
    maximize = Direction(space.search.direction).maximize
    made: list[tuple[str, str]] = []

    # -- optimization history --------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(7, 4))

    def points(state: TrialState) -> list[tuple[int, float]]:
        if state == TrialState.PRUNED:  # no value: its last intermediate one
            curves = [(t.number, objectives.curve(t)) for t in trials if t.state == state]
            return [(n, c[max(c)]) for n, c in curves if c]
        done = [(t.number, objectives.value(t)) for t in trials if t.state == state]
        return [(n, v) for n, v in done if v is not None]

    done, pruned = points(TrialState.COMPLETE), points(TrialState.PRUNED)
    ax.scatter([n for n, _ in done], [v for _, v in done], s=18, label="complete")
    ax.scatter(
        [n for n, _ in pruned],
        [v for _, v in pruned],
        s=18,
        marker="x",
        color="tab:red",
        label="pruned (last value)",
    )
    xs: list[int] = []
    ys: list[float] = []
    for number, value in sorted(done):
        better = not ys or (value > ys[-1] if maximize else value < ys[-1])
        xs.append(number)
        ys.append(value if better else ys[-1])
    ax.step(xs, ys, where="post", color="black", label="best so far")
    ax.set(xlabel="trial", ylabel=metric, title="Optimization history")
    ax.legend(loc="lower right" if maximize else "upper right")
    fig.tight_layout()
    save_png(fig, RunDir(out).plot("optimization_history"))
    plt.close(fig)
    made.append(("Optimization history", RunDir.plot_name("optimization_history")))

    # -- intermediate values ---------------------------------------------------------------
    fig, ax = plt.subplots(figsize=(7, 4))
    for t in trials:
        by_step = objectives.curve(t)
        if not by_step:
            continue
        steps = sorted(by_step)
        values = [by_step[s] for s in steps]
        # pruned trials are many and stop early: drawn faint and below, so the completed ones
        # (the candidates) stay readable on top, each labeled with its trial number
        if t.state == TrialState.PRUNED:
            ax.plot(steps, values, color="tab:red", alpha=0.35, lw=0.8, zorder=1)
            ax.scatter(steps[-1:], values[-1:], color="tab:red", marker="x", s=16, alpha=0.5, zorder=1)
        elif t.state == TrialState.COMPLETE:
            ax.plot(steps, values, color="tab:blue", alpha=0.9, lw=1.4, zorder=3)
            ax.annotate(
                f"{t.number}",
                (steps[-1], values[-1]),
                fontsize=6,
                color="tab:blue",
                zorder=4,
                xytext=(2, 0),
                textcoords="offset points",
                va="center",
            )
    ax.plot([], [], color="tab:blue", label="complete (trial number at its end)")
    ax.plot([], [], color="tab:red", label="pruned (x: stopped here)")
    ax.set(xlabel="epoch", ylabel=f"best {metric} so far", title="Intermediate values per trial")
    ax.legend()
    fig.tight_layout()
    save_png(fig, RunDir(out).plot("intermediate_values"))
    plt.close(fig)
    made.append(("Intermediate values", RunDir.plot_name("intermediate_values")))

    # -- parameter importances -------------------------------------------------------------
    evaluator, method = importance_evaluator()
    try:
        importances = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=objectives.importance_target()
        )
    except (RuntimeError, ValueError):
        importances = {}  # too few completed trials, or nothing varied
    if importances:
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(importances) + 1.2))
        names = list(importances)[::-1]
        ax.barh(names, [importances[n] for n in names])
        completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        ax.set(
            xlabel=f"importance ({method})",
            title=f"Parameter importances over the {completed} completed trials (pruned ones left out)",
        )
        fig.tight_layout()
        save_png(fig, RunDir(out).plot("param_importances"))
        plt.close(fig)
        made.append(("Parameter importances", RunDir.plot_name("param_importances")))
    return made


def _cost_plot(table: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (costs, accs) in table.curves.items():
        order = sorted(range(len(costs)), key=lambda i: costs[i])
        ax.plot([costs[i] for i in order], [accs[i] for i in order], marker=".", ms=3, label=name)
    xs = [c for c, _ in table.singles.values()]
    ys = [a for _, a in table.singles.values()]
    ax.scatter(xs, ys, color="gray", s=14, label="single LLMs", zorder=3)
    for name, (c, a) in table.singles.items():
        ax.annotate(name, (c, a), fontsize=6, color="dimgray", xytext=(3, 2), textcoords="offset points")
    ax.set(
        xscale="log",
        xlabel="mean cost per query (log)",
        ylabel="routing accuracy",
        title="Accuracy against cost (test)",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    plt.close(fig)


def _ensemble_lines(path: Path) -> list[str]:
    summary = read_object(path, "a run's ensemble summary")
    try:
        members = ", ".join(
            (f"trial {int(m['trial'])}" if "trial" in m else f"baseline {m['baseline']}")
            + f" ({m['model_type']}, weight {float(m['weight']):.3f})"
            for m in summary["members"]
        )
        text = (
            f"Greedy selection with replacement on val {summary['metric']} among the best trials of "
            f"each model type and the baselines: {int(summary['picks'])} picks of "
            f"{len(summary['members'])} routers: {members}. Val {summary['metric']} "
            f"{float(summary['val']['ensemble']):.4f} vs {float(summary['val']['best_single']):.4f} for "
            "the best single candidate."
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a run's ensemble summary (bad or missing {exc})") from exc
    return ["", "## Ensemble", "", text]


def write_report(run_dir: Path) -> Path:
    """Write ``run_dir/report.md`` and its plots; returns the report's path."""
    if not (RunDir(run_dir).study).exists():
        raise UserError(f"{run_dir}: not a run dir ({RunDir.STUDY} not found)")
    check_dir_target(run_dir, "report")  # report.md and the plots go there
    info = read_run_info(run_dir)
    space = load_space(RunDir(run_dir).space)
    notes: list[str] = []
    study = open_study(run_dir, space, write=False, notes=notes)
    for note in notes:
        log.info(f"note: {note}")
    trials = study.get_trials(deepcopy=False)
    counts = {s: sum(t.state.name == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    # the front and the exported trial, once: every part of the report below shows them
    objectives = objectives_of(study, space.search)
    front = objectives.front()
    best = objectives.exported(front_weights(run_dir)) if counts["COMPLETE"] else None
    lines = [
        f"# Search report: {study.study_name}",
        "",
        f"- run dir: `{run_dir}`",
        f"- data: `{info.data_source or 'unknown'}`",
        f"- {space.search.objective_text}; sampler {space.search.sampler.type}, "
        f"pruner {space.search.pruner.type}",
        f"- trials: {len(trials)} — {counts['COMPLETE']} complete, {counts['PRUNED']} pruned, "
        f"{counts['FAIL']} failed" + (f", {counts['RUNNING']} running" if counts["RUNNING"] else ""),
        f"- epochs trained: {sum(len(objectives.curve(t)) for t in trials)}",
        *(f"- note: {note}" for note in notes),
    ]
    if best is not None:
        pipeline = space.trial_config(best.params)["pipeline_config"]
        lines += [
            f"- {objectives.summary(best)}",
            "",
            "## Best config",
            "",
            "```json",
            json.dumps(
                {
                    "model_type": pipeline["model_type"],
                    **pipeline["model_config"],
                    **pipeline["train_config"],
                },
                indent=2,
            ),
            "```",
        ]
    # Everything is read and checked before the first file is written: a damaged file of the
    # run is one line, and leaves no half-made report.
    routers = _routers(run_dir, info, best)
    ensemble = RunDir(run_dir).ensemble_summary
    ensemble_lines = _ensemble_lines(ensemble) if routers and ensemble.exists() else []
    table = None
    if routers and info.data_source:
        options = info.options()
        if len(space.data.encoders) > 1 and best is not None:  # they read its encoder's embeddings
            options = options.merged(encoder=space.encoder_of(best.params))
        data = load_data(info.data_source, options)
        table = run_routing_table(routers, data, recommend=objectives.recommends)

    plots = _plots(study, run_dir, space)
    if front and best is not None:
        plots.insert(0, pareto_plot(study, space, run_dir, front, best.number))
    for title, png in plots:
        lines += ["", f"## {title}", "", f"![{title}]({png})"]
        if title == "Pareto front" and best is not None:
            lines += ["", front_text(space, front, best.number)]
    if table is not None:
        lines += [
            "",
            "## Routing on the test split",
            "",
            "```",
            table.text,
            "```",
            "",
            "Routing accuracy: the mean score of the chosen LLM over the test questions (on 0/1 "
            "scores, the share whose chosen LLM answered correctly); each "
            "router routes with its offsets (the switching margin tuned on val). Correctness "
            "accuracy: per observed (question, LLM) pair, prediction thresholded at 0.5 (a grade s "
            "counts s right). The "
            "intervals resample the test questions (2,000 paired bootstrap draws): a router is "
            "better or worse than a reference only when its whole interval is above or below 0. "
            "The recommended router is chosen on val among the searched routers and the baselines "
            "(each a router file in baselines/): the simplest one whose val routing is not "
            "significantly below the best on val.",
        ]
        if table.curves:
            _cost_plot(table, RunDir(run_dir).plot("cost_curve"))
            lines += [
                "",
                "## Accuracy against cost",
                "",
                f"![Accuracy against cost]({RunDir.plot_name('cost_curve')})",
                "",
                "Each curve sweeps the willingness to pay lambda (routing to the LLM with the highest "
                "predicted correctness minus lambda x its mean cost); points are the single LLMs. AIQ "
                "is the area under each curve's non-decreasing convex hull over the single LLMs' cost "
                "range, divided by that range.",
            ]
        lines += ensemble_lines
    else:
        lines += ["", "## Routing on the test split", "", "No completed trial's router found."]
    path = RunDir(run_dir).report
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path
