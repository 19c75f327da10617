"""The data layer: RouterData, its sources (folders, built-in sets, synthetic) and converters."""

from search.data.sources import (
    EMBEDDING_FILES,
    SPLITS,
    RouterData,
    load_data,
    load_embeddings,
    load_folder,
    parse_synthetic_spec,
    write_parquet_layout,
)

__all__ = [
    "EMBEDDING_FILES",
    "SPLITS",
    "RouterData",
    "load_data",
    "load_embeddings",
    "load_folder",
    "parse_synthetic_spec",
    "write_parquet_layout",
]
