"""Loading a full EmbedLLM-size folder: 36,054 questions x 112 LLMs (about 4 million rows), a
train.csv of about 1.5 GB with a prompt text column (commas, quotes and line breaks inside quoted
values; pyarrow's writer quotes the header names), 768-d embeddings. The script makes the folder
itself, then loads it in a fresh process and prints the wall time and the peak RSS.

    python bench/bigdata.py [--keep DIR]     # targets: at most 10 s and 3 GB on 2 CPU cores
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import torch

QUESTIONS, MODELS, DIM = 36_054, 112, 768
WORDS = "the of and to in a is that for it as with was on be by this are or which at from but not".split()


def prompts(rng: np.random.Generator, n: int) -> list[str]:
    """Question texts of about 500 characters, some with commas, quotes and line breaks."""
    out = []
    for i in range(n):
        words = rng.choice(WORDS, size=rng.integers(105, 145))
        text = " ".join(words)
        if i % 3 == 0:
            text += ',\n"Options": A, B, C'
        out.append(f"Question {i}: {text}")
    return out


def make_folder(folder: Path, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(
        torch.from_numpy(rng.standard_normal((QUESTIONS, DIM), dtype=np.float32)),
        folder / "question_embeddings.pth",
    )
    names = [f"llm-{j:03d}" for j in range(MODELS)]
    pacsv.write_csv(
        pa.table({"model_id": np.arange(MODELS), "model_name": names}), folder / "model_order.csv"
    )
    perm = rng.permutation(QUESTIONS)
    n_train, n_val = int(0.8 * QUESTIONS), int(0.1 * QUESTIONS)
    parts = {"train": perm[:n_train], "val": perm[n_train : n_train + n_val], "test": perm[n_train + n_val :]}
    texts = prompts(rng, QUESTIONS)
    skill = rng.normal(0, 1, MODELS)
    for split, questions in parts.items():
        questions = np.sort(questions)
        schema = None
        writer = None
        for start in range(0, len(questions), 2000):
            q = np.repeat(questions[start : start + 2000], MODELS)
            m = np.tile(np.arange(MODELS), len(q) // MODELS)
            label = (rng.random(len(q)) < 1 / (1 + np.exp(-skill[m]))).astype(np.int8)
            table = pa.table(
                {
                    "prompt_id": q,
                    "model_id": m,
                    "category_id": q % 14,
                    "label": label,
                    "prompt": pa.array([texts[i] for i in q]),
                    "model_name": pa.array([names[j] for j in m]),
                }
            )
            if writer is None:
                schema = table.schema
                writer = pacsv.CSVWriter(folder / f"{split}.csv", schema)
            writer.write_table(table)
        assert writer is not None and schema is not None
        writer.close()


LOAD = """
import time, sys
from search.data import load_data
t0 = time.perf_counter()
data = load_data(sys.argv[1])
print(f"{time.perf_counter() - t0:.2f} {int(data.mask.sum())} {data.num_models}")
"""


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--keep", help="make (or reuse) the folder here instead of a temp dir")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp) / "embedllm"
        if not (folder / "test.csv").exists():
            t0 = time.perf_counter()
            make_folder(folder)
            print(f"made {folder} in {time.perf_counter() - t0:.0f}s")
        size = (folder / "train.csv").stat().st_size
        with open(folder / "train.csv", "rb") as fh:
            header = fh.readline().decode().strip()
        print(f"train.csv: {size / 2**30:.2f} GB; header {header}")
        proc = subprocess.run(
            [sys.executable, "-c", LOAD, str(folder)], capture_output=True, text=True, check=True
        )
        seconds, pairs, models = proc.stdout.split()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KB -> GB
        print(f"load: {float(seconds):.2f}s, peak RSS {peak:.2f} GB, {int(pairs):,} pairs, {models} models")
        print(
            f"targets: time <= 10 s {'met' if float(seconds) <= 10 else 'missed'}; "
            f"peak RSS <= 3 GB {'met' if peak <= 3 else 'missed'}"
        )


if __name__ == "__main__":
    main()
