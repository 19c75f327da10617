"""Our search vs the stock peer a user would write instead, in one run on this machine.

The peer is Ray Tune with OptunaSearch and ASHA, written as their docs show: a function
trainable over a DataLoader, an MLP in plain torch, ``tune.report`` after every epoch. Both sides
search the same space (mlp, 1-2 layers of width 128-1024, dropout, lr, weight decay, batch 256,
30 epochs) on the same data with the same trial budget, 2 trials (or packs) at a time on 1 CPU
each, successive halving at epochs 3, 9 and 27, on val correctness. Printed: wall time and its
ratio, epochs trained, best val value, and test routing / correctness of each side's best; and
time to quality: the wall until each side first reported a val value at least the peer's final
best (from the peer's per-epoch reports and our study's per-epoch report times), its ratio, and
the test metrics of the router that got there first.

    python bench/peer.py [--trials 16] [--data PATH] [--pack-sizes 1,8]
        [--variants today,refill,data,refill+data]
        Each variant of ours at each pack size: ``today`` (the reproducible default, no
        refill), ``refill`` (refilled packs; the search need not be reproducible), ``data``
        (data as the fidelity), ``refill+data``.

    python bench/peer.py --gpu --trials 128 --pack-sizes 64 --variants today,refill
        On one GPU: the peer's trials at gpu 0.25, four sharing it, against our packs with the
        whole GPU (``bench/gpu.sh`` runs this).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import MMLU, run_search, write_yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import search
from router_models import load_router
from search import metrics as M
from search.data import RouterData, load_data
from search.files.rundir import RunDir
from search.routing.inference import predict

EPOCHS, RUNGS = 30, (3, 9, 27)
METRIC = "val_correctness_acc"


def peer_trainable(config: dict[str, Any], data: dict[str, Any] | None = None) -> None:
    """What a Ray Tune user writes: plain torch, a DataLoader, one report per epoch."""
    from ray import tune

    assert data is not None
    torch.set_num_threads(1)
    device = torch.device("cuda" if data["gpu"] and torch.cuda.is_available() else "cpu")
    X, Y, Mk = (torch.from_numpy(np.array(data[k])).to(device) for k in ("X", "Y", "mask"))
    tr, va = data["train"], data["val"]
    mean, std = X[tr].mean(0), X[tr].std(0).clamp_min(1e-6)
    X = (X - mean) / std
    layers: list[nn.Module] = []
    width_in = X.shape[1]
    for _ in range(config["layers"]):
        layers += [nn.Linear(width_in, config["width"]), nn.ReLU(), nn.Dropout(config["dropout"])]
        width_in = config["width"]
    model = nn.Sequential(*layers, nn.Linear(width_in, Y.shape[1])).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    loader = DataLoader(TensorDataset(X[tr], Y[tr], Mk[tr]), batch_size=256, shuffle=True)
    best = -1.0
    for _epoch in range(EPOCHS):
        model.train()
        for xb, yb, mb in loader:
            loss = M.masked_bce(model(xb), yb, mb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = M.correctness_acc(model(X[va]), Y[va], Mk[va])
        if acc > best:
            best = acc
            torch.save(
                {
                    "state": {k: v.cpu() for k, v in model.state_dict().items()},
                    "mean": mean.cpu(),
                    "std": std.cpu(),
                    "config": config,
                },
                os.path.join(data["out"], f"{tune.get_context().get_trial_id()}.pt"),
            )
        tune.report({METRIC: acc, "best": best, "wall": time.time()})


def run_peer(data: RouterData, trials: int, out: Path, gpu: bool = False) -> dict[str, Any]:
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    payload = {
        "X": data.X,
        "Y": data.Y,
        "mask": data.mask,
        "train": data.splits["train"],
        "val": data.splits["val"],
        "out": str(out),
        "gpu": gpu,
    }
    t0, t0_wall = time.perf_counter(), time.time()  # the wall to quality counts Ray's start too
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    space = {
        "layers": tune.randint(1, 3),
        "width": tune.qrandint(128, 1024, 128),
        "dropout": tune.uniform(0.0, 0.5),
        "lr": tune.loguniform(1e-4, 3e-3),
        "weight_decay": tune.loguniform(1e-5, 1e-1),
    }
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(peer_trainable, data=payload), {"cpu": 1, "gpu": 0.25} if gpu else {"cpu": 1}
        ),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric=METRIC,
            mode="max",
            search_alg=OptunaSearch(seed=0),
            scheduler=ASHAScheduler(max_t=EPOCHS, grace_period=RUNGS[0], reduction_factor=3),
            num_samples=trials,
            max_concurrent_trials=4 if gpu else 2,  # on a GPU: four trials share it, a quarter each
        ),
        run_config=tune.RunConfig(storage_path=str(out / "tune"), verbose=0),
    )
    results = tuner.fit()
    wall = time.perf_counter() - t0
    ray.shutdown()
    frames = [r.metrics_dataframe for r in results if r.metrics_dataframe is not None]
    epochs = sum(len(f) for f in frames)
    best_value, best_id = max(
        (float(f[METRIC].max()), r.metrics["trial_id"]) for f, r in zip(frames, results)
    )
    reached = min(
        float(f["wall"][f[METRIC] >= best_value].min()) for f in frames if (f[METRIC] >= best_value).any()
    )
    return {
        "wall": wall,
        "epochs": epochs,
        "best": best_value,
        "router": out / f"{best_id}.pt",
        "to_quality": reached - t0_wall,
    }


def time_to(run_dir: Path, target: float, start: float) -> tuple[float | None, int | None]:
    """When our search first reported a val value >= ``target`` (seconds after ``start``, a
    time.time()), and which trial did; (None, None) if none did."""
    study = search.RunResult.load(run_dir).study
    first: tuple[float, int] | None = None
    for t in study.trials:
        times = t.user_attrs.get("epoch_times") or []
        for step, value in sorted(t.intermediate_values.items()):
            if value >= target and step - 1 < len(times):
                first = min(first or (math.inf, -1), (times[step - 1] - start, t.number))
                break
    return first if first is not None else (None, None)


def peer_scores(path: Path, data: RouterData) -> torch.Tensor:
    saved = torch.load(path, weights_only=True)
    c = saved["config"]
    layers: list[nn.Module] = []
    width_in = data.embedding_dim
    for _ in range(c["layers"]):
        layers += [nn.Linear(width_in, c["width"]), nn.ReLU(), nn.Dropout(c["dropout"])]
        width_in = c["width"]
    model = nn.Sequential(*layers, nn.Linear(width_in, data.num_models))
    model.load_state_dict(saved["state"])
    X = (torch.from_numpy(data.split("test")[0].copy()) - saved["mean"]) / saved["std"]
    return predict(model, X)


VARIANTS = {
    "today": {},
    "refill": {"reproducible": False, "refill": True},
    "data": {"fidelity": {"resource": "data"}},
    "refill+data": {"reproducible": False, "refill": True, "fidelity": {"resource": "data"}},
}


def our_space(trials: int, pack_size: int, variant: str = "today", gpu: bool = False) -> dict[str, Any]:
    return {
        "model_type": "mlp",
        "params": {
            "hidden_dims": {
                "layers": {"low": 1, "high": 2},
                "width": {"low": 128, "high": 1024, "step": 128},
                "shrink": False,
            },
            "dropout": {"low": 0.0, "high": 0.5},
            "activation": "relu",
            "lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True},
            "weight_decay": {"low": 1.0e-5, "high": 1.0e-1, "log": True},
            "batch_size": 256,
            "epochs": EPOCHS,
        },
        "search": {
            "num_samples": trials,
            "metric": METRIC,
            "sampler": {"type": "tpe"},
            "pruner": {"type": "successive_halving", "min_resource": RUNGS[0], "reduction_factor": 3},
            "max_concurrent_trials": 1 if gpu else 2,  # on a GPU: one pack has the whole chip
            "pack_size": pack_size,
            "seed": 0,
            **VARIANTS[variant],
        },
        "resources": {"cpu": 1, "gpu": 1} if gpu else {"cpu": 1},
    }


def test_metrics(scores: torch.Tensor, data: RouterData) -> str:
    _, y, m = data.split("test")
    return f"test routing {M.route_acc(scores, y, m):.4f}, correctness {M.correctness_acc(scores, y, m):.4f}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--data", default=str(MMLU))
    p.add_argument("--pack-sizes", default="1,8")
    p.add_argument("--variants", default="today")
    p.add_argument("--gpu", action="store_true", help="the peer at gpu 0.25 x 4, ours one pack per GPU")
    args = p.parse_args()
    variants = args.variants.split(",")
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        raise SystemExit(f"--variants: unknown {bad[0]!r}; valid: {', '.join(VARIANTS)}")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1, as ours
    data = load_data(args.data)
    print(
        f"{args.trials} trials, {EPOCHS} epochs, rungs {RUNGS}, 2 at a time, 1 CPU each, data {data.source}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        peer = run_peer(data, args.trials, Path(tmp), gpu=args.gpu)
        print(
            f"stock peer (Ray Tune + OptunaSearch + ASHA): {peer['wall']:.1f}s, {peer['epochs']} epochs, "
            f"best {METRIC} {peer['best']:.4f} after {peer['to_quality']:.1f}s; "
            f"{test_metrics(peer_scores(peer['router'], data), data)}",
            flush=True,
        )
        for k in (int(s) for s in args.pack_sizes.split(",")):
            for variant in variants:
                name = f"ours{k}-{variant.replace('+', '-')}"
                path = write_yaml(Path(tmp) / f"{name}.yaml", our_space(args.trials, k, variant, args.gpu))
                start = time.time()
                rc, wall, rows = run_search(path, Path(tmp) / name, data=args.data)
                assert rc == 0
                best = max(r["value"] for r in rows if r["state"] == "COMPLETE")
                router, _ = load_router(Path(tmp) / name / "best_router.pt")
                scores = predict(router, torch.from_numpy(data.split("test")[0].copy()))
                reached, trial = time_to(Path(tmp) / name, peer["best"], start)
                if reached is None:
                    quality = "never reached the peer's best"
                else:
                    saved = RunDir(Path(tmp) / name).trial_router(trial)
                    there = (
                        test_metrics(
                            predict(load_router(saved)[0], torch.from_numpy(data.split("test")[0].copy())),
                            data,
                        )
                        if os.path.exists(saved)
                        else "its router not kept"
                    )
                    quality = (
                        f"reached the peer's best after {reached:.1f}s "
                        f"({reached / peer['to_quality']:.2f}x the peer's), trial {trial}: {there}"
                    )
                print(
                    f"ours, pack size {k}, {variant}: {wall:.1f}s ({wall / peer['wall']:.2f}x the peer's), "
                    f"{sum(r['epochs_run'] for r in rows)} epochs, best {METRIC} {best:.4f} "
                    f"({best - peer['best']:+.4f}); {test_metrics(scores, data)}; {quality}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
