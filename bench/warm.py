"""A warm start against a cold one on a changed set: a search on the built-in MMLU-Pro set with
5 of its 29 LLMs left out (last month's pool), then on the whole set (this month's: 5 more
LLMs) twice with the same space, budget and seed: cold, and warm-started from the first run
(``--warm-start``).

Measured: the trials and the wall time (from the first trial's start) until the run first
reaches the cold start's best val (every trial's best val, pruned ones too, in the order they
ended); both runs' best val and the test routing of the router each recommends. The earlier
run's finished trials (completed and pruned) seed the warm one. Target: the
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


def _curve(run: Path, metric: str) -> list[tuple[float, float]]:
    """(seconds since the first trial started, best val so far) at each trial's end."""
    rows = pq.read_table(run / "results.parquet").to_pylist()
    rows = [r for r in rows if r.get(f"best_{metric}") is not None and r.get("start_time") is not None]
    t0 = min(r["start_time"] for r in rows)
    ends = sorted((r["start_time"] + r["duration_s"] - t0, r[f"best_{metric}"]) for r in rows)
    out, best = [], -np.inf
    for t, v in ends:
        best = max(best, v)
        out.append((t, best))
    return out


def _reached(curve: list[tuple[float, float]], target: float) -> tuple[int | None, float | None]:
    for i, (t, best) in enumerate(curve):
        if best >= target - 1e-12:
            return i + 1, t
    return None, None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--trials", type=int)
    p.add_argument("--keep", help="keep the runs here")
    args = p.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-warm-"))
    work.mkdir(parents=True, exist_ok=True)
    raw = load_yaml(Path(args.space))
    if args.trials:
        raw["search"]["num_samples"] = args.trials
    metric = raw["search"]["metric"]
    space = write_yaml(work / "space.yaml", raw)
    data = load_data("mmlu-pro")
    names = data.model_names
    drop = [names[j] for j in sorted(np.random.default_rng(1).choice(len(names), LEFT_OUT, replace=False))]
    print(f"last month's pool: the built-in set without {', '.join(drop)}")
    old = builtin_without(work, drop, "old")
    _, wall_old, _ = run_search(
        space, work / "old", data=old["data"], **{k: v for k, v in old.items() if k != "data"}
    )
    _, wall_cold, _ = run_search(space, work / "cold", data="mmlu-pro")
    _, wall_warm, _ = run_search(space, work / "warm", data="mmlu-pro", warm_start=[str(work / "old")])
    print(f"searches: old {wall_old:.0f} s, cold {wall_cold:.0f} s, warm {wall_warm:.0f} s (whole runs)")

    cold, warm = _curve(work / "cold", metric), _curve(work / "warm", metric)
    target = cold[-1][1]
    n_cold, t_cold = _reached(cold, target)
    n_warm, t_warm = _reached(warm, target)
    _, yt, mt = data.split("test")
    Xte = data.split("test")[0]
    finals = {}
    for name in ("cold", "warm"):
        r = Router.load(work / name)
        tasks = [data.task_names[int(t)] for t in data.split_tasks("test")]  # a task prior reads them
        acc = M.route_acc(r.logits(Xte, tasks=tasks), torch.from_numpy(yt), torch.from_numpy(mt), r.offsets)
        finals[name] = (_curve(work / name, metric)[-1][1], acc, r.chosen)
    print(
        f"cold: best val {metric} {target:.4f} first reached at trial {n_cold} of {len(cold)}, {t_cold:.0f} s"
    )
    if n_warm is None:
        print(f"warm: never reached it; its best {warm[-1][1]:.4f}")
    else:
        assert n_cold is not None and t_cold is not None and t_warm is not None
        print(
            f"warm: reached it at trial {n_warm} of {len(warm)}, {t_warm:.0f} s: {n_warm / n_cold:.2f}x the "
            f"trials, {t_warm / t_cold:.2f}x the wall (target <= 0.5x)"
        )
    for name, (val, acc, chosen) in finals.items():
        print(f"final {name}: best val {metric} {val:.4f}, test routing {acc:.4f} (recommended: {chosen})")


if __name__ == "__main__":
    main()
