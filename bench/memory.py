"""Memory of a search: PSS (proportional set size, so shared pages count once) summed over the
driver and every Ray process, sampled while trials run. The data sits once per node in the
object store; each extra concurrent trial should add less than a quarter of the dataset on
top of a worker's base footprint.

    python bench/memory.py [--questions 20000] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import psutil
from common import ROOT, load_yaml, run_search, write_yaml

from search.data import load_data


def tree_pss() -> tuple[float, dict[int, tuple[str, float, float]]]:
    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    per: dict[int, tuple[str, float, float]] = {}
    for proc in procs:
        try:
            info = proc.memory_full_info()
            per[proc.pid] = (proc.name(), info.pss, info.uss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return sum(v[1] for v in per.values()), per


class Sampler(threading.Thread):
    """Peak total PSS, and the peak USS (private memory) of each trial worker process."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.workers: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            total, per = tree_pss()
            self.peak = max(self.peak, total)
            for pid, (name, _pss, uss) in per.items():
                if "router_trainable" in name or "ImplicitFunc" in name:
                    self.workers[pid] = max(self.workers.get(pid, 0.0), uss)
            time.sleep(0.2)


def base_worker_pss() -> tuple[float, float]:
    """PSS of a Ray worker that imported what a trial imports (torch, the trainer, Ray Tune's
    trainable machinery) and trained a step, but holds no data."""
    import ray

    @ray.remote
    def probe() -> tuple[float, float]:
        import torch

        import search.trial.train  # noqa: F401

        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
        info = psutil.Process().memory_full_info()
        return info.pss, info.uss

    ray.init(
        address="local",
        include_dashboard=False,
        logging_level=40,
        log_to_driver=False,
        _temp_dir=tempfile.mkdtemp(prefix="rs-mem-", dir="/tmp"),
    )
    try:
        return ray.get(probe.remote())
    finally:
        ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--questions", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--trials", type=int, default=8)
    p.add_argument(
        "--small-model",
        action="store_true",
        help="fix a tiny model, so what a trial adds is data, not weights and optimizer state",
    )
    args = p.parse_args()
    raw = load_yaml(ROOT / "spaces" / "residual.yaml")
    raw["data"] = {"synthetic": {"n_questions": args.questions}}
    raw["params"]["epochs"] = 3
    raw["search"].update(num_samples=args.trials, pruner={"type": "none"})
    if args.small_model:
        raw["params"].update(hidden_dims=[32], num_blocks=1)
    data = load_data(f"synthetic:n_questions={args.questions}")
    size = data.X.nbytes + data.Y.nbytes + data.mask.nbytes
    MB = 2**20
    print(
        f"dataset {size / MB:.0f} MB ({args.questions} questions x {data.num_models} models, "
        f"{data.embedding_dim}-d)"
    )
    base, base_uss = base_worker_pss()
    print(
        f"base footprint of a Ray worker (what a trial imports, no data): PSS {base / MB:.0f} MB, "
        f"private (USS) {base_uss / MB:.0f} MB"
    )
    peaks = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in (1, args.concurrency):
            raw["search"]["max_concurrent_trials"] = c
            raw["resources"] = {"cpu": round(psutil.cpu_count() / c, 3)}
            path = write_yaml(Path(tmp) / f"mem{c}.yaml", raw)
            sampler = Sampler()
            sampler.start()
            rc, wall, _ = run_search(path, Path(tmp) / f"run{c}")
            sampler.stop.set()
            sampler.join()
            peaks[c] = sampler.peak
            workers = sorted(sampler.workers.values())
            print(
                f"concurrency {c}: peak PSS of driver + Ray processes {sampler.peak / MB:.0f} MB "
                f"(rc {rc}, {wall:.0f}s); trial workers' private peaks "
                f"{', '.join(f'{w / MB:.0f}' for w in workers)} MB"
            )
            if c == args.concurrency and workers:
                above = max(workers) - base_uss
                print(
                    f"  largest trial worker, private: base {base_uss / MB:.0f} MB + {above / MB:.0f} MB = "
                    f"{above / size:.2f} of the dataset (target < 0.25)"
                )
    extra = (peaks[args.concurrency] - peaks[1]) / (args.concurrency - 1)
    print(
        f"each extra concurrent trial adds {extra / MB:.0f} MB to the total = base "
        f"{base / MB:.0f} MB + {(extra - base) / MB:.0f} MB ({(extra - base) / size:.2f} of the "
        "dataset; peaks are sampled, so this figure is noisy)"
    )


if __name__ == "__main__":
    main()
