"""Shared pieces of the benchmark scripts (not a test module)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import optuna
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MMLU = ROOT.parent / "shared" / "data" / "mmlu_pro" / "embedllm"

import search  # noqa: E402
from search.space import Space  # noqa: E402


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
    space_path: Path, run_dir: Path, enqueue: list[dict] | None = None, quiet: bool = True, **options: Any
) -> tuple[int, float, list[dict]]:
    """Run a search through ``search.run``; returns (0, or 1 when no trial completed; wall
    seconds; the results rows). ``options`` are ``search.run``'s (data, num_samples, ...)."""
    start = time.perf_counter()
    result = search.run(
        space_path, out=run_dir, export=run_dir / "export.json", enqueue=enqueue or (), quiet=quiet, **options
    )
    wall = time.perf_counter() - start
    return (0 if result.best is not None else 1), wall, result.trials.to_dict("records")


def builtin_without(folder: Path, drop: list[str], name: str) -> dict[str, Any]:
    """The built-in MMLU-Pro set without the LLMs ``drop``, as a wide parquet (``name``) beside
    its embeddings in ``folder``: ``search.run``'s data and data options to read it."""
    import numpy as np
    import pyarrow.parquet as pq

    from search.data.builtin import BUILTIN

    src = BUILTIN["mmlu-pro"]
    table = pq.read_table(src / "labels.parquet").drop(["question_id", *drop])
    table = table.rename_columns(["task" if c == "category" else c for c in table.column_names])
    pq.write_table(table, folder / f"{name}.parquet")
    np.save(folder / "embeddings.npy", np.load(src / "embeddings.npy").astype(np.float32))
    return {
        "data": str(folder / f"{name}.parquet"),
        "embeddings": str(folder / "embeddings.npy"),
        "align": "id",
        "id_column": "prompt_id",
    }
