"""A warm start against a cold one on a changed set: a search on the built-in MMLU-Pro set with
5 of its 29 LLMs left out (last month's pool), then on the whole set (this month's: 5 more
LLMs) twice with the same space, budget and seed: cold, and warm-started from the first run
(``--warm-start``).

Measured: the trials (asked, in the study's order) and the wall time (from the first trial's
start) until the run first reaches the cold start's best val (every trial's best val, pruned
ones too, in the order they ended); both runs' best val and the test routing of the router
each recommends. The earlier run's finished trials (completed and pruned) seed the warm one,
its best three are tried again first. Repeated for several search seeds (``--seeds``); the
median ratio is the figure. Target: the
warm start reaches the cold start's best in at most 0.5x its trials and wall time.

    python bench/warm.py [--space spaces/residual.yaml] [--trials N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from common import ROOT, builtin_without, load_yaml, run_search, write_yaml

from search import metrics as M
from search.data import load_data
from search.routing.router import Router

LEFT_OUT = 5


def _curve(run: Path, metric: str) -> list[tuple[float, float, int]]:
    """(seconds since the first trial started, best val so far, trials asked by then: the
    number of the trial that ended, plus one) at each trial's end."""
    rows = pq.read_table(run / "results.parquet").to_pylist()
    rows = [r for r in rows if r.get(f"best_{metric}") is not None and r.get("start_time") is not None]
    t0 = min(r["start_time"] for r in rows)
    ends = sorted((r["start_time"] + r["duration_s"] - t0, r[f"best_{metric}"], r["trial"]) for r in rows)
    out, best = [], -np.inf
    for t, v, n in ends:
        best = max(best, v)
        out.append((t, best, n + 1))
    return out


def _reached(curve: list[tuple[float, float, int]], target: float) -> tuple[int | None, float | None]:
    """(trials asked, seconds) when the run first reached ``target``."""
    for t, best, asked in curve:
        if best >= target - 1e-12:
            return asked, t
    return None, None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--keep", help="keep the runs here")
    p.add_argument("--seeds", type=int, default=3, help="cold and warm pairs, each with its own search seed")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-warm-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = load_yaml(Path(args.space))
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    metric = raw["search"]["metric"]
    data = load_data("mmlu-pro")
    names = data.model_names
    drop = [names[j] for j in sorted(np.random.default_rng(1).choice(len(names), LEFT_OUT, replace=False))]
    print(f"last month's pool: the built-in set without {', '.join(drop)}")
    old = builtin_without(work, drop, "old")
    Xte, yt, mt = data.split("test")
    tasks = [data.task_names[int(t)] for t in data.split_tasks("test")]  # a task prior reads them
    ratios = []
    for seed in range(args.seeds):
        raw["search"]["seed"] = seed
        space = write_yaml(work / f"space-{seed}.yaml", raw)
        walls = {}  # runs kept from an earlier call (--keep) are used again (0 s)
        runs = [
            ("cold", {"data": "mmlu-pro"}),
            ("warm", {"data": "mmlu-pro", "warm_start": [str(work / "old")]}),
        ]
        for name, options in [("old", old)] * (seed == 0) + runs:
            run = work / (name if name == "old" else f"{name}-{seed}")
            walls[name] = 0.0
            if not (run / "results.parquet").exists():
                _, walls[name], _ = run_search(space, run, **options)
        cold, warm = _curve(work / f"cold-{seed}", metric), _curve(work / f"warm-{seed}", metric)
        target = cold[-1][1]
        n_cold, t_cold = _reached(cold, target)
        n_warm, t_warm = _reached(warm, target)
        finals = []
        for name in ("cold", "warm"):
            r = Router.load(work / f"{name}-{seed}")
            acc = M.route_acc(
                r.logits(Xte, tasks=tasks), torch.from_numpy(yt), torch.from_numpy(mt), r.offsets
            )
            finals.append(
                f"{name} best val {_curve(work / f'{name}-{seed}', metric)[-1][1]:.4f}, test {acc:.4f}"
            )
        assert n_cold is not None and t_cold is not None
        if n_warm is None or t_warm is None:
            reached = f"warm never reached it (its best {warm[-1][1]:.4f})"
            ratios.append((np.inf, np.inf))
        else:
            reached = (
                f"warm at trial {n_warm}, {t_warm:.0f} s: {n_warm / n_cold:.2f}x the trials, "
                f"{t_warm / t_cold:.2f}x the wall"
            )
            ratios.append((n_warm / n_cold, t_warm / t_cold))
        print(
            f"seed {seed}: cold best val {metric} {target:.4f} first at trial {n_cold} of {len(cold)}, "
            f"{t_cold:.0f} s; {reached}; finals: {'; '.join(finals)} (searches, s: "
            f"{', '.join(f'{k} {v:.0f}' for k, v in walls.items())})",
            flush=True,
        )
    trials, wall = (float(np.median([r[i] for r in ratios])) for i in (0, 1))
    print(f"median over {args.seeds} seeds: {trials:.2f}x the trials, {wall:.2f}x the wall (target <= 0.5x)")


if __name__ == "__main__":
    main()
