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


def tree_pss() -> tuple[float, dict[int, float]]:
    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    per: dict[int, float] = {}
    for proc in procs:
        try:
            per[proc.pid] = proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return sum(per.values()), per


class Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_pss()[0])
            time.sleep(0.2)


def base_worker_pss() -> float:
    """PSS of a Ray worker that imported torch and the trainer but holds no data."""
    import ray

    @ray.remote
    def probe() -> float:
        import torch

        import search.train  # noqa: F401

        torch.optim.AdamW([torch.zeros(1, requires_grad=True)])
        return psutil.Process().memory_full_info().pss

    ray.init(address="local", include_dashboard=False, logging_level=40, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="rs-mem-", dir="/tmp"))
    try:
        return ray.get(probe.remote())
    finally:
        ray.shutdown()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--questions", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--trials", type=int, default=8)
    args = p.parse_args()
    raw = load_yaml(ROOT / "spaces" / "residual.yaml")
    raw["data"] = {"synthetic": {"n_questions": args.questions}}
    raw["params"]["epochs"] = 3
    raw["search"].update(num_samples=args.trials, pruner={"type": "none"})
    data = load_data(f"synthetic:n_questions={args.questions}")
    size = data.X.nbytes + data.Y.nbytes + data.mask.nbytes
    MB = 2**20
    print(f"dataset {size / MB:.0f} MB ({args.questions} questions x {data.num_models} models, "
          f"{data.embedding_dim}-d)")
    base = base_worker_pss()
    print(f"base footprint of a Ray worker (torch + trainer imported, no data): {base / MB:.0f} MB")
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
            print(f"concurrency {c}: peak PSS of driver + Ray processes {sampler.peak / MB:.0f} MB "
                  f"(rc {rc}, {wall:.0f}s)")
    extra = (peaks[args.concurrency] - peaks[1]) / (args.concurrency - 1)
    above = extra - base
    print(f"each extra concurrent trial: {extra / MB:.0f} MB = base {base / MB:.0f} MB + "
          f"{above / MB:.0f} MB, i.e. {above / size:.2f} of the dataset (target < 0.25)")


if __name__ == "__main__":
    main()
