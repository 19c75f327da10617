"""``search run``'s plan: every check that needs no Ray and no data, before anything starts."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

from search.driver.cluster import check_reachable
from search.errors import UserError
from search.paths import check_dir_target, check_file_target
from search.results.study import STUDY_FILE
from search.space import Space, load_space
from search.storage import check_storage


@dataclass
class RunPlan:
    space: Space
    run_dir: Path
    export: Path
    data_spec: str
    num_samples: int
    address: str | None
    storage: str
    resume: bool
    verbose: bool
    debug: bool
    pack_size: int | str = "auto"
    budget: float | None = None


def plan_run(args: argparse.Namespace) -> RunPlan:
    """Every check that needs no Ray and no data: fails before anything starts or is written."""
    space = load_space(args.space)
    num_samples = args.num_samples if args.num_samples is not None else space.search.num_samples
    if num_samples < 1:
        raise UserError(f"--num-samples must be >= 1, got {num_samples}")
    pack_size = parse_pack_size(args.pack_size) if args.pack_size is not None else space.search.pack_size
    budget = args.budget if args.budget is not None else space.search.budget
    if budget is not None and not budget > 0:
        raise UserError(f"--budget must be a cost per query > 0, got {budget}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.out or f"runs/{space.name}-{stamp}").resolve()
    check_dir_target(run_dir, "--out")
    if args.resume:
        if not args.out:
            raise UserError("--resume needs --out RUN_DIR: the run dir to continue")
        if not (run_dir / STUDY_FILE).exists():
            raise UserError(f"--resume: {run_dir} holds no run ({STUDY_FILE} not found)")
    elif (run_dir / STUDY_FILE).exists():
        raise UserError(f"{run_dir} already holds a run: add --resume to continue it, or pick --out")
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address == "local":
        address = None
    if address is not None:
        if not args.storage:
            raise UserError(
                f"--address {address}: cluster runs need --storage, an absolute path on shared "
                "storage or a URI that every node can reach"
            )
        check_reachable(address)
    storage = check_storage(args.storage) if args.storage else str(run_dir)
    if args.storage and "://" not in storage:
        check_dir_target(Path(storage), "--storage")
    data_spec = args.data or space.data.source()
    export = Path(args.export or space.export).resolve()
    check_file_target(export, "--export")
    return RunPlan(
        space,
        run_dir,
        export,
        data_spec,
        num_samples,
        address,
        storage,
        args.resume,
        args.verbose,
        args.debug,
        pack_size,
        budget,
    )


# Trials per pack when the space says ``pack_size: auto``: the best measured on each kind of
# device (bench/peer.py and bench/packing.py on 2 CPU cores, bench/gpu.sh on one H200; see
# BENCHMARKS.md).
AUTO_PACK_SIZE = {"cpu": 8, "gpu": 64}


def parse_pack_size(value: str) -> int | str:
    """``--pack-size``: a positive integer or auto."""
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"--pack-size {value!r}: must be an integer >= 1 or auto")
    return int(value)


def resolve_pack_size(pack_size: int | str, on_gpu: bool, packable: bool, trials: int, slots: int) -> int:
    """The pack size a run uses. ``auto``: at most the device's measured best, evened out so the
    trials left fill every concurrent slot for the same number of rounds (no slot idles while
    one last pack trains); 1 for a model type that cannot be packed."""
    if pack_size == "auto":
        if not packable:
            return 1
        per_round = max(1, slots) * AUTO_PACK_SIZE["gpu" if on_gpu else "cpu"]
        rounds = max(1, -(-trials // per_round))
        return max(1, -(-trials // (max(1, slots) * rounds)))
    assert isinstance(pack_size, int)
    return pack_size
