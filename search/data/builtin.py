"""Built-in data sets, shipped inside the package and named on the command line (``--data
mmlu-pro``) or in a space (``data: {path: mmlu-pro}``)."""

from __future__ import annotations

from pathlib import Path

from search.data.convert import load_wide
from search.data.router_data import RouterData

HERE = Path(__file__).resolve().parent / "builtin"
BUILTIN = {
    # 12,032 MMLU-Pro questions x 29 LLMs, 384-d all-MiniLM-L6-v2 embeddings (float16), EmbedLLM's
    # 80/10/10 split; provenance and licences: builtin/mmlu_pro/PROVENANCE.md
    "mmlu-pro": HERE / "mmlu_pro",
}


def load_builtin(name: str) -> RouterData:
    """A built-in data set by name (see BUILTIN)."""
    folder = BUILTIN[name]
    data = load_wide(
        folder / "labels.parquet", embeddings=folder / "embeddings.npy", align="id", id_column="prompt_id"
    )
    data.source = name
    return data
