"""The data layer: RouterData, its sources (folders, built-in sets, wide tables, JSON records,
synthetic) and the parquet layout they convert to."""

from search.data.builtin import BUILTIN, load_builtin
from search.data.embedllm import EMBEDDING_FILES, load_embeddings, load_folder, write_parquet_layout
from search.data.router_data import SPLITS, RouterData, split_by_question
from search.data.sources import load_data, parse_synthetic_spec

__all__ = [
    "BUILTIN",
    "EMBEDDING_FILES",
    "SPLITS",
    "RouterData",
    "load_builtin",
    "load_data",
    "load_embeddings",
    "load_folder",
    "parse_synthetic_spec",
    "split_by_question",
    "write_parquet_layout",
]
