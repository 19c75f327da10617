"""Reading tables (CSV or parquet) and embedding files robustly, every error one line naming the
file and the row or column.

CSVs may have quoted header names, a UTF-8 byte-order mark, CRLF line ends, and quoted values
holding commas or line breaks (a prompt text column): the header is read by the same parser as
the rows, never split by hand.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from search.data.scores import check_scores, thresholded
from search.errors import DataError, first_line

# Quoted values may span lines (prompt texts do): parse them as one value.
_PARSE = pacsv.ParseOptions(newlines_in_values=True)


def _unreadable(path: Path, exc: BaseException) -> DataError:
    if isinstance(exc, UnicodeDecodeError) or "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
        return DataError(f"{path}: not UTF-8 text (a Latin-1 or other encoding?); save it as UTF-8")
    return DataError(f"{path}: not readable ({first_line(exc)})")


def _schema(path: Path) -> pa.Schema:
    """A parquet file's schema, or a CSV's as inferred from its first block; a column name
    given twice is an error (which of the two is meant?)."""
    try:
        if path.suffix == ".parquet":
            schema = pq.read_schema(path)
        else:
            with pacsv.open_csv(path, parse_options=_PARSE) as reader:
                schema = reader.schema
        names = list(schema.names)  # decoded here: a Latin-1 header fails here
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise DataError(f"{path}: column {twice!r} appears twice; give every column its own name")
    return schema


def columns_of(path: Path) -> list[str]:
    """The column names of a CSV (its first block only) or parquet file."""
    return list(_schema(path).names)


def types_of(path: Path) -> dict[str, pa.DataType]:
    """Column name -> type: a parquet file's schema, or a CSV's as inferred from its first block."""
    schema = _schema(path)
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
    """The named columns (all when None) of a CSV or parquet file; text that is not UTF-8 is
    an error naming its column (it would come back as bytes, and names as ``b'caf\\xe9'``)."""
    _schema(path)  # one name twice is an error
    try:
        if path.suffix == ".parquet":
            table = pq.read_table(path, columns=wanted)
        else:
            convert = pacsv.ConvertOptions(include_columns=wanted) if wanted is not None else None
            table = pacsv.read_csv(path, parse_options=_PARSE, convert_options=convert)
    except Exception as exc:
        raise _unreadable(path, exc) from exc
    for name, column in zip(table.column_names, table.columns):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise DataError(
                f"{path}: column {name} is not UTF-8 text (a Latin-1 or other encoding?); save the "
                "file as UTF-8"
            )
    return table


def iter_table_rows(path: Path, batch_rows: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """The rows of a CSV or parquet file as dicts, a batch at a time (memory does not grow
    with the file); text that is not UTF-8 is an error naming its column."""
    _schema(path)
    try:
        if path.suffix == ".parquet":
            for part in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                yield _text_rows(part, path)
            return
        block = pacsv.ReadOptions(block_size=1 << 20)
        with pacsv.open_csv(path, parse_options=_PARSE, read_options=block) as reader:
            for part in reader:
                yield _text_rows(part, path)
    except DataError:
        raise
    except Exception as exc:
        raise _unreadable(path, exc) from exc


def _text_rows(part: pa.RecordBatch, path: Path) -> list[dict[str, Any]]:
    for name, column in zip(part.schema.names, part.columns):
        if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            raise DataError(f"{path}: column {name} is not UTF-8 text; save the file as UTF-8")
    return part.to_pylist()


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
    return in_int64(values, name, path)


def in_int64(values: np.ndarray, name: str, path: Path) -> np.ndarray:
    """Whole numbers as int64; one beyond int64's range (2^64 read as a float, a uint64) is an
    error naming its line, never a wrapped, negative id."""
    if values.dtype.kind == "f":
        big = np.flatnonzero(~((values >= -(2.0**63)) & (values < 2.0**63)))
    elif values.dtype.kind == "u":
        big = np.flatnonzero(values > np.iinfo(np.int64).max)
    else:
        big = np.empty(0, dtype=np.int64)
    if big.size:
        shown = f"{values[big[0]]:.0f}" if values.dtype.kind == "f" else str(values[big[0]])
        raise DataError(
            f"{path} line {big[0] + 2}: {name} {shown} is beyond the integers an id can be (< 2^63)"
        )
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
    allow_empty: bool = False,
) -> np.ndarray:
    """Scores in [0, 1] (float32; see ``scores.py``); with ``threshold``, score >= threshold is 1.
    With ``allow_empty``, empty cells stay NaN (unobserved); else they are an error."""
    y = thresholded(float_column(table, name, path, allow_empty=True), threshold)
    if not allow_empty and np.isnan(y).any():
        raise DataError(f"{path} line {int(np.flatnonzero(np.isnan(y))[0]) + 2}: {name} is empty")
    check_scores(y, lambda i: f"{path} line {i + 2}: {name}")
    return y.astype(np.float32)


# Embeddings are real numbers: floats, or integers / booleans (quantized or binary codes).
# Complex numbers would lose their imaginary part, dates and strings mean nothing as features.
_REAL_KINDS = "fiub"


def load_matrix(path: Path) -> np.ndarray:
    """float32 [rows, d] from a ``.npy`` or ``.pth`` file of real numbers, checked for NaN/inf.

    Raises:
        DataError: Missing, unreadable, not a 2-d array of real numbers, or NaN/inf in a row.
    """
    try:
        if path.suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        else:
            import torch

            with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
                warnings.simplefilter("ignore")
                X = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(X, torch.Tensor):
                if X.is_complex():
                    raise DataError(f"{path}: complex embeddings ({X.dtype}); give real numbers")
                X = X.float().numpy()
            elif isinstance(X, (list, tuple)):
                X = np.asarray(X)  # nested lists of numbers; ragged ones become objects, refused below
            else:
                raise DataError(
                    f"{path}: holds a {type(X).__name__}, not a tensor; save one [num_prompts, dim] tensor"
                )
    except DataError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise DataError(f"{path}: is a folder; give an embeddings file (.npy or .pth)") from exc
    except Exception as exc:
        # Never torch's own text: it suggests loading with weights_only=False, which runs code.
        raise DataError(
            f"{path}: not a readable embeddings file (a .npy array, or a tensor saved with torch.save)"
        ) from exc
    if not isinstance(X, np.ndarray):  # np.load of an .npz archive
        raise DataError(f"{path}: an archive of arrays, not one array; save one [num_prompts, dim] array")
    if X.dtype.kind not in _REAL_KINDS or X.dtype.fields is not None:
        raise DataError(
            f"{path}: embeddings of type {X.dtype} ({_KIND_NAMES.get(X.dtype.kind, 'not numbers')}); "
            "give real numbers (float, int or bool)"
        )
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: expected a 2-d [num_prompts, dim] array, got shape {X.shape}")
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(
            f"{path} row {row} (prompt_id {row}): NaN or inf in the embedding (or a value beyond float32)"
        )
    return X


_KIND_NAMES = {
    "c": "complex numbers",
    "M": "dates",
    "m": "time spans",
    "U": "strings",
    "S": "bytes",
    "V": "structured records",
    "O": "Python objects",
}
