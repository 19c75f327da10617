"""Overhead of our Ray search vs plain in-process Optuna: the same N trials (same configs,
same seeds, no pruning) both ways; prints the wall-time ratio and overhead seconds per trial.

    python bench/overhead.py [--trials 32] [--space spaces/residual.yaml] [--epochs 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import optuna
import torch
from common import ROOT, load_yaml, run_search, sample_params, suggest_all, write_yaml

from search.data import load_data
from search.space import parse_space
from search.trial.train import train_router


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=32)
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--epochs", type=int, help="override the space's epochs")
    args = p.parse_args()

    raw = load_yaml(Path(args.space))
    if args.epochs:
        raw["params"]["epochs"] = args.epochs
    raw["search"].update(num_samples=args.trials, pruner={"type": "none"})
    space = parse_space(raw)
    params = sample_params(space, args.trials, seed=123)
    cpus = torch.get_num_threads()
    print(f"{args.trials} trials, {space.max_epochs} epochs each, {space.model_type}, {cpus} CPU threads")

    # -- plain Optuna, in-process, one trial at a time on all threads -----------------------
    t0 = time.perf_counter()
    data = load_data(space.data.source())
    study = optuna.create_study(direction="maximize")
    for p_ in params:
        study.enqueue_trial(p_)

    def objective(trial: optuna.Trial) -> float:
        config = space.trial_config(suggest_all(trial, space))
        res = train_router(config, data, seed=space.search.seed + trial.number, metric=space.search.metric)
        return res.best_value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=args.trials)
    plain = time.perf_counter() - t0
    print(f"plain Optuna, 1 trial at a time on {cpus} threads: {plain:.1f}s, best {study.best_value:.4f}")

    # -- plain Optuna with the same parallelism as ours: 2 trials at once, 1 thread each ----
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    study2 = optuna.create_study(direction="maximize")
    for p_ in params:
        study2.enqueue_trial(p_)
    study2.optimize(objective, n_trials=args.trials, n_jobs=space.search.max_concurrent_trials or 1)
    plain_par = time.perf_counter() - t0
    torch.set_num_threads(cpus)
    print(
        f"plain Optuna, {space.search.max_concurrent_trials} threads x 1 torch thread: "
        f"{plain_par:.1f}s, best {study2.best_value:.4f}"
    )

    # -- our search: Ray Tune trials, same configs and seeds --------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        path = write_yaml(Path(tmp) / "overhead.yaml", raw)
        rc, ours, rows = run_search(path, Path(tmp) / "run", enqueue=params)
    best = max(r["value"] for r in rows if r["state"] == "COMPLETE")
    print(
        f"our search:   {ours:.1f}s, best {best:.4f} (rc {rc}, {len(rows)} trials, "
        f"{space.search.max_concurrent_trials} at a time, {space.resources.cpu} CPU each)"
    )
    for name, base in (("plain sequential", plain), ("plain same parallelism", plain_par)):
        print(
            f"wall-time ratio ours/{name}: {ours / base:.3f}  "
            f"overhead per trial: {(ours - base) / args.trials:+.2f}s"
        )


if __name__ == "__main__":
    main()
