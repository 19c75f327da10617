"""Every file this project writes goes through here: atomically (a temp file and a rename, so
a crash or a full disk leaves the old file whole), with the mode a plain ``open`` gives. JSON has
no NaN or inf (they become null); tables are parquet, or CSV by the file's suffix."""

from __future__ import annotations

import io
import json
import math
import os
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from router_models.io import atomic_write_bytes, current_umask

__all__ = ["atomic_write_bytes", "current_umask", "write_json", "write_parquet", "write_table", "write_text"]


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _clean(obj.item())
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically (an existing file is replaced whole or kept)."""
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2) + "\n").encode())


def write_parquet(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> None:
    """Write rows (dicts, same keys or missing ones as null) as a parquet table, atomically."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    write_table(path, pa.table({k: [row.get(k) for row in rows] for k in keys}) if rows else pa.table({}))


def write_table(path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write a table atomically: CSV when the path ends in ``.csv``, else parquet."""
    buf = io.BytesIO()
    if os.fspath(path).endswith(".csv"):
        pacsv.write_csv(table, buf)
    else:
        pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def save_png(fig: Any, path: str | os.PathLike[str]) -> None:
    """A figure as PNG, written whole or not at all."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    atomic_write_bytes(path, buf.getvalue())


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode())
