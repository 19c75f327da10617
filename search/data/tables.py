"""Reading tables (CSV or parquet) and embedding files robustly, every error one line naming the
file and the row or column.

CSVs may have quoted header names, a UTF-8 byte-order mark, CRLF line ends, and quoted values
holding commas or line breaks (a prompt text column): the header is read by the same parser as
the rows, never split by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from search.errors import DataError

# Quoted values may span lines (prompt texts do): parse them as one value.
_PARSE = pacsv.ParseOptions(newlines_in_values=True)


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV (its first block only) or parquet file."""
    try:
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        with pacsv.open_csv(path, parse_options=_PARSE) as reader:
            return list(reader.schema.names)
    except Exception as exc:
        raise DataError(f"{path}: not readable ({str(exc).splitlines()[0]})") from None


def types_of(path: Path) -> dict[str, pa.DataType]:
    """Column name -> type: a parquet file's schema, or a CSV's as inferred from its first block."""
    try:
        if path.suffix == ".parquet":
            schema = pq.read_schema(path)
        else:
            with pacsv.open_csv(path, parse_options=_PARSE) as reader:
                schema = reader.schema
    except Exception as exc:
        raise DataError(f"{path}: not readable ({str(exc).splitlines()[0]})") from None
    return {name: schema.field(name).type for name in schema.names}


def read_table(path: Path, columns: list[str], optional: tuple[str, ...] = ()) -> pa.Table:
    """``columns`` (required) and those of ``optional`` present, nothing else read."""
    present = columns_of(path)
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; has {sorted(present)}")
    wanted = list(columns) + [c for c in optional if c in present and c not in columns]
    return read_columns(path, wanted)


def read_columns(path: Path, wanted: list[str] | None = None) -> pa.Table:
    """The named columns (all when None) of a CSV or parquet file."""
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=wanted)
        convert = pacsv.ConvertOptions(include_columns=wanted) if wanted is not None else None
        return pacsv.read_csv(path, parse_options=_PARSE, convert_options=convert)
    except Exception as exc:
        raise DataError(f"{path}: not readable ({str(exc).splitlines()[0]})") from None


def int_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
    """An integer column; an empty cell or a fraction is an error naming its line."""
    col = table.column(name)
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{path} line {row + 2}: column {name} is empty")
    values = col.to_numpy(zero_copy_only=False)
    if values.dtype.kind == "f":
        bad = np.flatnonzero(values != np.round(values))
        if bad.size:
            raise DataError(f"{path} line {bad[0] + 2}: {name} {values[bad[0]]!r} is not an integer")
    elif values.dtype.kind not in "iub":
        raise DataError(f"{path}: column {name} must be integers, got {col.type}")
    return values.astype(np.int64)


def float_column(table: pa.Table, name: str, path: Path, allow_empty: bool = True) -> np.ndarray:
    """A numeric column as float64 (empty cells NaN when allowed); inf is an error."""
    col = table.column(name)
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_null(col.type)):
        raise DataError(f"{path}: column {name} must be numbers, got type {col.type}")
    values = col.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(np.isinf(values) | (np.isnan(values) if not allow_empty else False))
    if bad.size:
        shown = "empty" if np.isnan(values[bad[0]]) else f"{values[bad[0]]:g}"
        raise DataError(f"{path} line {bad[0] + 2}: {name} is {shown}")
    return values


def label_column(
    table: pa.Table,
    name: str,
    path: Path,
    threshold: float | None = None,
    hint: str = "",
    allow_empty: bool = False,
) -> np.ndarray:
    """Correctness labels in {0, 1} (float32); with ``threshold``, score >= threshold is 1. With
    ``allow_empty``, empty cells stay NaN (unobserved); else they are an error."""
    y = float_column(table, name, path, allow_empty=True)
    if threshold is not None:
        y = np.where(np.isnan(y), np.nan, (y >= threshold).astype(np.float64))
    bad = np.flatnonzero(~((y == 0) | (y == 1) | (np.isnan(y) & allow_empty)))
    if bad.size:
        shown = "empty" if np.isnan(y[bad[0]]) else f"{y[bad[0]]:g}"
        raise DataError(f"{path} line {bad[0] + 2}: {name} {shown} is not 0 or 1{hint}")
    return y.astype(np.float32)


def load_matrix(path: Path) -> np.ndarray:
    """float32 [rows, d] from a ``.npy`` or ``.pth`` file, checked for NaN/inf."""
    try:
        if path.suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        else:
            import torch

            X = torch.load(path, map_location="cpu", weights_only=True)
            X = X.float().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable embeddings file ({str(exc).splitlines()[0]})") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: expected a 2-d [num_prompts, dim] array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{path} row {row} (prompt_id {row}): NaN or inf in the embedding")
    return X
