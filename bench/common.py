"""Shared pieces of the benchmark scripts (not a test module)."""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MMLU = ROOT.parent / "shared" / "data" / "mmlu_pro" / "embedllm"

from search.__main__ import main  # noqa: E402
from search.results.study import open_study  # noqa: E402
from search.space import Space, parse_space  # noqa: E402


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def write_yaml(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def sample_params(space: Space, n: int, seed: int) -> list[dict[str, Any]]:
    """n parameter sets drawn at random from the space (the same on every side of a bench)."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [space.suggest(study.ask()) for _ in range(n)]


def suggest_all(trial: optuna.Trial, space: Space) -> dict[str, Any]:
    """Ask a trial for every param of the space (enqueued values come back as given)."""
    return space.suggest(trial)


def run_search(
    space_path: Path, run_dir: Path, *extra: str, enqueue: list[dict] | None = None, quiet: bool = True
) -> tuple[int, float, list[dict]]:
    """Run ``python -m search run`` in-process; returns (rc, wall seconds, results rows)."""
    args = [str(space_path), "--out", str(run_dir), "--export", str(run_dir / "export.json"), *extra]
    if enqueue:
        study = open_study(run_dir, parse_space(load_yaml(space_path)))
        for params in enqueue:
            study.enqueue_trial(params)
        args.append("--resume")
    buf = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buf) if quiet else contextlib.nullcontext():
        rc = main(["run", *args])
    wall = time.perf_counter() - start
    if rc != 0:
        print(buf.getvalue()[-4000:])
    rows = pq.read_table(run_dir / "results.parquet").to_pylist()
    return rc, wall, rows
