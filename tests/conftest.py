"""Shared test helpers: small router data written in the EmbedLLM layout."""

from __future__ import annotations

import os
from pathlib import Path

# Every Ray the tests start (local runs, ray.cluster_utils clusters, `ray start`, the search's
# driver) binds and names its nodes on 127.0.0.1 only: Ray's switch for single-machine use,
# read when ray is first imported, so it is set here, before any test module imports it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import numpy as np  # noqa: E402
import pytest
import torch

MMLU = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mmlu_pro" / "embedllm"


def write_embedllm(
    folder: Path, n: int = 60, m: int = 4, d: int = 8, seed: int = 0, order: bool = True
) -> Path:
    """A small, valid EmbedLLM-layout folder: n questions x m models, d-dim embeddings."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    X = rng.standard_normal((n, d)).astype(np.float32)
    torch.save(torch.from_numpy(X), folder / "question_embeddings.pth")
    perm = rng.permutation(n)
    parts = {
        "train": perm[: int(0.6 * n)],
        "val": perm[int(0.6 * n) : int(0.8 * n)],
        "test": perm[int(0.8 * n) :],
    }
    names = [f"llm-{j}" for j in range(m)]
    for split, qs in parts.items():
        lines = ["prompt_id,model_id,category_id,label,model_name,category"]
        for q in sorted(qs):
            for j in range(m):
                label = int(rng.random() < 0.3 + 0.1 * j + 0.2 * (X[q, j % d] > 0))
                lines.append(f"{q},{j},0,{label},{names[j]},math")
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    if order:
        rows = ["model_id,model_name", *(f"{j},{names[j]}" for j in range(m))]
        (folder / "model_order.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def embedllm_dir(tmp_path: Path) -> Path:
    return write_embedllm(tmp_path / "data")


TINY_SYNTH = "synthetic:n_questions=200,n_models=6,dim=16,n_topics=3,seed=3"
