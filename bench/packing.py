"""Packs vs one Optuna trial per Ray Tune trial.

The trials are drawn as a packed search draws them (a leader, then followers sharing its
structural params), once, and every side trains exactly those configs, with no pruning.

    python bench/packing.py [--trials 48] [--sizes 4,8,16]
        The default space on this machine's CPU: pack size 1 and each K, 2 packs at a time,
        1 CPU each; trials per minute, the ratio to pack size 1, and the best val metric.

    python bench/packing.py --sweep [--device cuda] [--sizes 1,8,16,32,64] [--pad]
        No Ray: one pack of K trained directly; member-epochs per second vs K = 1. With --pad
        members of other widths are zero-padded into one fused group (what a GPU pack does),
        else each set of equal widths is a fused group (what a CPU pack does).

    python bench/packing.py --refill [--trials 24] [--seeds 0,1,2]
        The default pruned search (the space's own pruner, pack size auto, 2 packs at a time):
        today's packs (reproducible, no refill), the same unordered without refill, and with
        refill, once per search seed (each seed samples other trials, so the sides are compared
        summed over seeds); trials per minute, the ratio to today's, epochs, the best val.

    python bench/packing.py --gpu-compare [--sizes 16,32]
        On one GPU: 4 unpacked trials sharing it (gpu 0.25 each) vs one pack of K (gpu 1.0);
        trials per minute and GPU memory per member.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from common import ROOT, load_yaml, run_search, write_yaml
from trainer import matmul_flops

from search.data import load_data
from search.driver.packer import Packer
from search.space import Space, parse_space
from search.trial.config import meta_model
from search.trial.train import train_pack


def packed_params(space: Space, n: int, k: int, dims: tuple[int, int], seed: int = 123) -> list[dict]:
    """n trials drawn as a packed search with packs of k draws them (random sampler)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    packer = Packer(study, space, k, *dims)
    out: list[dict] = []
    while len(out) < n:
        pack, _ = packer.next_pack(n - len(out))
        out += [t.params for t in pack]
    return out[:n]


def mb(value: float | None) -> str:
    return f"{value:.0f} MB" if value is not None else "- (no CUDA)"


def search(
    raw: dict, params: list[dict], pack_size: int, resources: dict, concurrency: int, tmp: Path
) -> dict:
    raw = json.loads(json.dumps(raw))
    raw["search"].update(
        num_samples=len(params),
        pruner={"type": "none"},
        pack_size=pack_size,
        max_concurrent_trials=concurrency,
    )
    raw["resources"] = resources
    name = f"k{pack_size}-" + "-".join(f"{k}{v}" for k, v in resources.items())
    path = write_yaml(tmp / f"{name}.yaml", raw)
    rc, wall, rows = run_search(path, tmp / name, enqueue=params)
    assert rc == 0, f"search with pack size {pack_size} failed"
    done = [r for r in rows if r["state"] == "COMPLETE"]
    packs = {r["pack"] for r in rows}
    mem = [r["gpu_mem_mb"] / sum(x["pack"] == r["pack"] for x in rows) for r in rows if r["gpu_mem_mb"]]
    return {
        "wall": wall,
        "per_min": 60 * len(rows) / wall,
        "best": max(r["value"] for r in done),
        "complete": len(done),
        "packs": len(packs),
        "mem_per_member": max(mem) if mem else None,
    }


def cpu_search(args: argparse.Namespace) -> None:
    raw = load_yaml(Path(args.space))
    space = parse_space(raw)
    data = load_data(space.data.source())
    sizes = [int(s) for s in args.sizes.split(",")]
    params = packed_params(space, args.trials, max(sizes), (data.embedding_dim, data.num_models))
    print(
        f"{args.trials} trials of {args.space}, {space.max_epochs} epochs, no pruning, "
        "2 at a time, 1 CPU each"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in [1, *sizes]:
            r = search(raw, params, k, {"cpu": 1}, 2, Path(tmp))
            rows.append((k, r))
            print(
                f"pack size {k:>2}: {r['wall']:6.1f}s  {r['per_min']:6.1f} trials/min  "
                f"{r['packs']:>2} packs  best {space.search.metric} {r['best']:.4f}",
                flush=True,
            )
    base = rows[0][1]
    best_k, best = max(rows[1:], key=lambda kr: kr[1]["per_min"])
    print(
        f"best K = {best_k}: {best['per_min'] / base['per_min']:.2f}x trials per minute; best val "
        f"{best['best']:.4f} vs {base['best']:.4f} (difference {best['best'] - base['best']:+.4f})"
    )


def sweep(args: argparse.Namespace) -> None:
    raw = load_yaml(Path(args.space))
    space = parse_space(raw)
    data = load_data(space.data.source())
    device = torch.device(args.device)
    sizes = [int(s) for s in args.sizes.split(",")]
    params = packed_params(space, max(sizes), max(sizes), (data.embedding_dim, data.num_models))
    configs = [space.trial_config(p) for p in params]
    epochs = args.epochs
    print(
        f"device {device}, pad {args.pad}, {epochs} epochs, "
        f"configs like {json.dumps(configs[0]['pipeline_config'])}"
    )

    def timed(cs: list[dict[str, Any]]) -> float:
        train_pack(cs[:1], data, seeds=[0], device=device, epochs=1, pad=args.pad)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train_pack(cs, data, seeds=list(range(len(cs))), device=device, epochs=epochs, pad=args.pad)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    # Useful FLOPs of a member-epoch: its own weights (padding excluded), 6 per weight and train
    # row (forward 2, backward 4), 2 per weight and val row (the epoch's evaluation).
    n_train, n_val = len(data.splits["train"]), len(data.splits["val"])

    def useful(cs: list[dict[str, Any]]) -> float:
        weights = [
            sum(
                p.numel()
                for p in meta_model(c, data.embedding_dim, data.num_models).parameters()
                if p.dim() == 2
            )
            for c in cs
        ]
        return sum((6 * n_train + 2 * n_val) * w for w in weights) * epochs

    n_mm = 8192 if device.type == "cuda" else 1024
    fp32, bf16 = (matmul_flops(device, n_mm, 10, dtype) for dtype in (torch.float32, torch.bfloat16))
    print(f"matmul {n_mm}^3 on {device}: fp32 {fp32 / 1e9:,.0f} GFLOP/s, bf16 {bf16 / 1e9:,.0f} GFLOP/s")

    def share(cs: list[dict[str, Any]], wall: float) -> str:
        rate = useful(cs) / wall
        return f"{rate / 1e9:,.1f} useful GFLOP/s = {rate / fp32:.4f} of fp32, {rate / bf16:.4f} of bf16"

    single = sum(timed([c]) for c in configs[:4]) / min(4, len(configs))
    base = epochs / single
    print(
        f"K= 1: {single:6.2f}s per trial ({base:7.1f} member-epochs/s, mean of 4 configs; "
        f"{share(configs[:4], 4 * single)})"
    )
    for k in sizes:
        if k == 1:
            continue
        wall = timed(configs[:k])
        mem = torch.cuda.max_memory_allocated() / 2**20 / k if device.type == "cuda" else float("nan")
        rate = k * epochs / wall
        print(
            f"K={k:>2}: {wall:6.2f}s per pack ({rate:7.1f} member-epochs/s, {rate / base:5.2f}x; "
            f"{mem:.0f} MB per member; {share(configs[:k], wall)})",
            flush=True,
        )


def gpu_compare(args: argparse.Namespace) -> None:
    raw = load_yaml(Path(args.space))
    space = parse_space(raw)
    data = load_data(space.data.source())
    sizes = [int(s) for s in args.sizes.split(",")]
    n = max(2 * max(sizes), 32)
    params = packed_params(space, n, max(sizes), (data.embedding_dim, data.num_models))
    with tempfile.TemporaryDirectory() as tmp:
        unpacked = {}
        fractions = [float(f) for f in args.fractions.split(",")]
        runs = [(f, round(1 / f), max(8, 4 * round(1 / f))) for f in fractions]
        for frac, at_once, trials in runs:
            r = search(raw, params[:trials], 1, {"cpu": 1, "gpu": frac}, at_once, Path(tmp))
            unpacked[frac] = r
            print(
                f"gpu {frac}, unpacked, {at_once} at a time: {trials} trials in {r['wall']:.1f}s = "
                f"{r['per_min']:.1f} trials/min, peak GPU memory per trial {mb(r['mem_per_member'])}",
                flush=True,
            )
        base = unpacked[0.25]
        for k in sizes:
            r = search(raw, params[: 2 * k], k, {"cpu": 1, "gpu": 1.0}, 1, Path(tmp))
            print(
                f"gpu 1.0, packs of {k}: {2 * k} trials in {r['wall']:.1f}s = {r['per_min']:.1f} trials/min "
                f"({r['per_min'] / base['per_min']:.2f}x gpu 0.25 unpacked), GPU memory per member "
                f"{mb(r['mem_per_member'])}",
                flush=True,
            )


REFILL_SIDES = {
    "today's packs": {},
    "unordered, no refill": {"reproducible": False, "refill": False},
    "refill": {"reproducible": False, "refill": True},
}


def refill_compare(args: argparse.Namespace) -> None:
    raw = load_yaml(Path(args.space))
    space = parse_space(raw)
    print(
        f"{args.trials} trials of {args.space}, pruner {space.search.pruner.type}, pack size "
        f"{space.search.pack_size}, {space.search.max_concurrent_trials} packs at a time, 1 CPU each; "
        f"search seeds {args.seeds}, the sides interleaved"
    )
    walls: dict[str, list[float]] = {name: [] for name in REFILL_SIDES}
    bests: dict[str, list[float]] = {name: [] for name in REFILL_SIDES}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in (int(s) for s in args.seeds.split(",")):
            for name, extra in REFILL_SIDES.items():
                side = json.loads(json.dumps(raw))
                side["search"].update(num_samples=args.trials, seed=rep, **extra)
                tag = f"{name.split(',')[0].replace(' ', '_').replace(chr(39), '')}-{rep}"
                path = write_yaml(Path(tmp) / f"{tag}.yaml", side)
                rc, wall, rows = run_search(path, Path(tmp) / tag)
                assert rc == 0, f"{name} failed"
                walls[name].append(wall)
                done = [r for r in rows if r["state"] == "COMPLETE"]
                bests[name].append(max(r["value"] for r in done))
                packs, epochs = len({r["pack"] for r in rows}), sum(r["epochs_run"] for r in rows)
                print(
                    f"seed {rep} {name:>22}: {wall:6.1f}s  {60 * len(rows) / wall:6.1f} trials/min  "
                    f"{packs:>2} packs  {epochs:>3} epochs  "
                    f"{len(done)} complete  best {space.search.metric} {max(r['value'] for r in done):.4f}",
                    flush=True,
                )
    base = sum(walls["today's packs"])
    for name, w in walls.items():
        print(
            f"{name:>22}: {sum(w):.1f}s over the seeds, {base / sum(w):.2f}x today's trials per "
            f"minute; mean best val {statistics.mean(bests[name]):.4f}"
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--trials", type=int, default=48)
    p.add_argument("--sizes", default="4,8,16")
    p.add_argument("--space", default=str(ROOT / "spaces" / "residual.yaml"))
    p.add_argument("--sweep", action="store_true")
    p.add_argument("--gpu-compare", action="store_true")
    p.add_argument("--refill", action="store_true", help="refill on and off on the pruned search")
    p.add_argument("--seeds", default="0,1,2", help="refill: the search seeds each side runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--pad", action="store_true", help="sweep: pad members of other widths (default: group)")
    p.add_argument("--epochs", type=int, default=4, help="sweep: epochs per pack")
    p.add_argument(
        "--fractions", default="1.0,0.25,0.125", help="gpu-compare: unpacked GPU shares (0.25 needed)"
    )
    args = p.parse_args()
    if args.sweep:
        sweep(args)
    elif args.gpu_compare:
        gpu_compare(args)
    elif args.refill:
        refill_compare(args)
    else:
        cpu_search(args)


if __name__ == "__main__":
    main()
