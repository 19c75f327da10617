"""Outputs of a run: config.json, best_router.pt, results.parquet; every write atomic."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from router_models.checkpoint import atomic_write_bytes


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
    table = pa.table({k: [row.get(k) for row in rows] for k in keys}) if rows else pa.table({})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
