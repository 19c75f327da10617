"""RouterData and its sources: EmbedLLM-layout folders (CSV or parquet), and synthetic data.

A source spec is a folder path, or ``synthetic`` optionally with settings:
``synthetic:n_questions=2000,n_models=20,dim=64,seed=1``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from search.data.synthetic import SyntheticSpec, make_synthetic
from search.errors import DataError

SPLITS = ("train", "val", "test")
EMBEDDING_FILES = ("question_embeddings.pth", "question_embeddings.npy")


@dataclass
class RouterData:
    """Router training data over questions x models.

    Attributes:
        X: float32 [num_prompts, d] query embeddings, row = prompt_id.
        Y: float32 [num_prompts, M] correctness in {0, 1} (0 where unobserved).
        mask: bool [num_prompts, M], True where the (question, model) pair was observed.
        model_names: M names, in output order.
        splits: question indices (int64, sorted) for "train", "val" and "test".
        source: where the data came from, for reports.
    """

    X: np.ndarray
    Y: np.ndarray
    mask: np.ndarray
    model_names: list[str]
    splits: dict[str, np.ndarray]
    source: str = ""

    @property
    def embedding_dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def num_models(self) -> int:
        return int(self.Y.shape[1])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, mask)`` rows of one split."""
        idx = self.splits[name]
        return self.X[idx], self.Y[idx], self.mask[idx]

    def check_embedding_dim(self, expected: int | None, where: str) -> None:
        """Raise DataError if a config expects another embedding width than the data has."""
        if expected is not None and int(expected) != self.embedding_dim:
            raise DataError(
                f"{where}: embedding_dim is {expected} but the data ({self.source}) has "
                f"{self.embedding_dim}-d embeddings"
            )

    def arrays(self) -> dict[str, Any]:
        """Plain numpy arrays and lists, for the object store (read back zero-copy).

        Shallow: ``dataclasses.asdict`` would deep-copy every array first.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def load_data(spec: str | Path | None) -> RouterData:
    """Load router data from a source spec (see module doc); None means default synthetic."""
    if spec is None or str(spec) == "synthetic" or str(spec).startswith("synthetic:"):
        return load_synthetic(parse_synthetic_spec(str(spec or "synthetic")))
    return load_folder(Path(spec))


def parse_synthetic_spec(spec: str) -> SyntheticSpec:
    """``synthetic[:key=value,...]`` -> SyntheticSpec; unknown keys and bad values are DataError."""
    _, _, rest = spec.partition(":")
    fields = {f.name: f.type for f in dataclasses.fields(SyntheticSpec)}
    kwargs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in fields:
            raise DataError(f"data {spec!r}: bad setting {item!r}; valid: {', '.join(fields)} as key=value")
        try:
            kwargs[key] = float(value) if fields[key] == "float" else int(value)
        except ValueError:
            raise DataError(f"data {spec!r}: {key}={value!r} is not a number") from None
    return synthetic_spec(kwargs, where=f"data {spec!r}")


def synthetic_spec(options: dict[str, Any], where: str) -> SyntheticSpec:
    try:
        return SyntheticSpec(**options)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {exc}") from None


def load_synthetic(spec: SyntheticSpec) -> RouterData:
    X, Y, mask, names, splits = make_synthetic(spec)
    return RouterData(X, Y, mask, names, splits, source=spec.source())


# -- EmbedLLM layout ------------------------------------------------------------------------


def _table_path(folder: Path, stem: str, required: bool = True) -> Path | None:
    for ext in (".parquet", ".csv"):
        path = folder / f"{stem}{ext}"
        if path.exists():
            return path
    if required:
        raise DataError(f"{folder / (stem + '.csv')}: file not found (nor {stem}.parquet)")
    return None


def _read_table(path: Path, columns: list[str], optional: list[str]) -> pa.Table:
    try:
        if path.suffix == ".parquet":
            present = set(pq.read_schema(path).names)
        else:
            with open(path, "rb") as fh:
                present = {c.strip() for c in fh.readline().decode("utf-8", "replace").split(",")}
    except Exception as exc:
        raise DataError(f"{path}: not readable ({exc})") from None
    missing = [c for c in columns if c not in present]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; has {sorted(present)}")
    wanted = columns + [c for c in optional if c in present]
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path, columns=wanted)
        opts = pacsv.ConvertOptions(include_columns=wanted)
        return pacsv.read_csv(path, convert_options=opts)
    except Exception as exc:
        raise DataError(f"{path}: not readable ({exc})") from None


def _int_column(table: pa.Table, name: str, path: Path) -> np.ndarray:
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


def load_embeddings(folder: Path) -> tuple[np.ndarray, Path]:
    """float32 [num_prompts, d] from question_embeddings.pth (or .npy), checked for NaN/inf."""
    path = next((folder / n for n in EMBEDDING_FILES if (folder / n).exists()), None)
    if path is None:
        raise DataError(f"{folder / EMBEDDING_FILES[0]}: file not found (nor .npy)")
    try:
        if path.suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        else:
            import torch

            X = torch.load(path, map_location="cpu", weights_only=True)
            X = X.float().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    except Exception as exc:
        raise DataError(f"{path}: not a readable embeddings file ({exc})") from None
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{path}: expected a 2-d [num_prompts, dim] array, got shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{path} row {row} (prompt_id {row}): NaN or inf in the embedding")
    return X, path


def _model_order(folder: Path) -> tuple[list[str] | None, Path | None]:
    path = _table_path(folder, "model_order", required=False)
    if path is None:
        return None, None
    table = _read_table(path, ["model_id", "model_name"], [])
    ids = _int_column(table, "model_id", path)
    names = table.column("model_name").to_pylist()
    if sorted(ids.tolist()) != list(range(len(ids))):
        raise DataError(f"{path}: model_id must be 0..{len(ids) - 1}, each once")
    ordered = [""] * len(ids)
    for i, name in zip(ids.tolist(), names):
        ordered[i] = str(name)
    return ordered, path


def load_folder(folder: Path) -> RouterData:
    """Load an EmbedLLM-layout folder (``.csv`` or ``.parquet`` tables)."""
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found (or give 'synthetic')")
    X, emb_path = load_embeddings(folder)
    order, order_path = _model_order(folder)

    tables: dict[str, tuple[Path, np.ndarray, np.ndarray, np.ndarray, list[Any] | None]] = {}
    for split in SPLITS:
        path = _table_path(folder, split)
        assert path is not None
        t = _read_table(path, ["prompt_id", "model_id", "label"], ["model_name"])
        if t.num_rows == 0:
            raise DataError(f"{path}: no rows (the {split} split is empty)")
        q = _int_column(t, "prompt_id", path)
        m = _int_column(t, "model_id", path)
        y = _label_column(t, path)
        names = t.column("model_name").to_pylist() if "model_name" in t.column_names else None
        bad = np.flatnonzero((q < 0) | (q >= X.shape[0]))
        if bad.size:
            raise DataError(
                f"{path} line {bad[0] + 2}: prompt_id {q[bad[0]]} is outside {emb_path.name} "
                f"(rows 0..{X.shape[0] - 1})"
            )
        tables[split] = (path, q, m, y, names)

    num_models = len(order) if order is not None else 1 + max(int(v[2].max()) for v in tables.values())
    model_names = order or [""] * num_models
    Y = np.zeros((X.shape[0], num_models), dtype=np.float32)
    mask = np.zeros((X.shape[0], num_models), dtype=bool)
    owner = np.full(X.shape[0], -1, dtype=np.int8)
    splits: dict[str, np.ndarray] = {}
    for s_idx, (split, (path, q, m, y, names)) in enumerate(tables.items()):
        bad = np.flatnonzero((m < 0) | (m >= num_models))
        if bad.size:
            where = f"not in {order_path.name}" if order_path else "negative"
            raise DataError(
                f"{path} line {bad[0] + 2}: model_id {m[bad[0]]} {where} (valid 0..{num_models - 1})"
            )
        if names is not None:
            _check_names(path, m, names, model_names, order_path)
        _check_duplicates(path, q, m, y, num_models)
        questions = np.unique(q)
        clash = questions[owner[questions] >= 0]
        if clash.size:
            other = SPLITS[int(owner[clash[0]])]
            raise DataError(
                f"{path}: prompt_id {clash[0]} is also in the {other} split; splits must be by question"
            )
        owner[questions] = s_idx
        Y[q, m] = y
        mask[q, m] = True
        splits[split] = questions
    model_names = [n or f"model_{i}" for i, n in enumerate(model_names)]
    return RouterData(X, Y, mask, model_names, splits, source=str(folder))


def _label_column(table: pa.Table, path: Path) -> np.ndarray:
    col = table.column("label")
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.int8())
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise DataError(f"{path}: column label must be 0 or 1, got type {col.type}")
    y = col.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~((y == 0) | (y == 1)))
    if bad.size:
        shown = "empty" if np.isnan(y[bad[0]]) else f"{y[bad[0]]:g}"
        raise DataError(f"{path} line {bad[0] + 2}: label {shown} is not 0 or 1")
    return y.astype(np.float32)


def _check_names(
    path: Path, m: np.ndarray, names: list[Any], model_names: list[str], order_path: Path | None
) -> None:
    for row in np.unique(m, return_index=True)[1]:
        mid, name = int(m[row]), str(names[row])
        if not model_names[mid]:
            model_names[mid] = name
        elif model_names[mid] != name:
            src = order_path.name if order_path else "an earlier row"
            raise DataError(
                f"{path} line {row + 2}: model_id {mid} is named {name!r} but {src} names it "
                f"{model_names[mid]!r}"
            )


def _check_duplicates(path: Path, q: np.ndarray, m: np.ndarray, y: np.ndarray, num_models: int) -> None:
    key = q * num_models + m
    order = np.argsort(key, kind="stable")
    same = key[order][1:] == key[order][:-1]
    conflict = same & (y[order][1:] != y[order][:-1])
    if conflict.any():
        i = int(np.flatnonzero(conflict)[0])
        first, second = sorted((int(order[i]), int(order[i + 1])))
        raise DataError(
            f"{path} line {second + 2}: (prompt_id {q[second]}, model_id {m[second]}) repeats "
            f"line {first + 2} with a different label"
        )


# -- writing --------------------------------------------------------------------------------


def write_parquet_layout(data: RouterData, dest: Path) -> None:
    """Write ``data`` as an EmbedLLM-layout folder with parquet tables and .npy embeddings."""
    dest.mkdir(parents=True, exist_ok=True)
    names = np.asarray(data.model_names, dtype=object)
    for split in SPLITS:
        idx = data.splits[split]
        qq, mm = np.nonzero(data.mask[idx])
        q = idx[qq]
        table = pa.table(
            {
                "prompt_id": pa.array(q, pa.int64()),
                "model_id": pa.array(mm, pa.int64()),
                "label": pa.array(data.Y[q, mm].astype(np.int8), pa.int8()),
                "model_name": pa.array(names[mm].tolist(), pa.string()),
            }
        )
        pq.write_table(table, dest / f"{split}.parquet")
    order = pa.table(
        {
            "model_id": pa.array(np.arange(data.num_models), pa.int64()),
            "model_name": data.model_names,
        }
    )
    pq.write_table(order, dest / "model_order.parquet")
    np.save(dest / "question_embeddings.npy", data.X)
