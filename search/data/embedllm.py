"""EmbedLLM's folder layout: long train/val/test tables (one row per question and LLM), question
embeddings, an optional model order; CSV or parquet tables, ``.pth`` or ``.npy`` embeddings.

Costs are optional: a ``cost`` column in train/val/test (that LLM's cost on that question) and/or
a ``cost`` column in model_order (its cost per query); a pair's own cost wins.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from search.data.data_options import DataOptions
from search.data.embedding import embeddings_for
from search.data.router_data import SPLITS, RouterData, index_tasks
from search.data.scores import is_graded
from search.data.tables import float_column, int_column, label_column, load_matrix, read_table
from search.errors import DataError

EMBEDDING_FILES = ("question_embeddings.pth", "question_embeddings.npy")


def _table_path(folder: Path, stem: str, required: bool = True) -> Path | None:
    for ext in (".parquet", ".csv"):
        path = folder / f"{stem}{ext}"
        if path.exists():
            return path
    if required:
        raise DataError(f"{folder / (stem + '.csv')}: file not found (nor {stem}.parquet)")
    return None


def not_a_layout(folder: Path) -> str:
    """Why a folder does not load, with the layouts that do: EmbedLLM's, or its files given as
    parts (one per task and split) or one by one."""
    files = sorted(
        p.name for p in folder.iterdir() if p.suffix.lower() in (".json", ".jsonl", ".csv", ".parquet")
    )
    listed = ", ".join(files[:3]) + (" ..." if len(files) > 3 else "")
    found = f"; it holds {len(files)} table or records file(s) ({listed})"
    parts = " --data ".join(f"train={folder / f}" for f in files[:2]) if files else ""
    hint = (
        f": give them as parts, one per task and split (--data {parts} ... --data test=FILE), or one file"
        if files
        else ""
    )
    return (
        f"{folder}: not a data folder in EmbedLLM's layout (train.csv, val.csv, test.csv and "
        f"question_embeddings.pth, or .parquet tables){found if files else ''}{hint}"
    )


def load_embeddings(folder: Path) -> tuple[np.ndarray, Path]:
    """float32 [num_prompts, d] from question_embeddings.pth (or .npy), checked for NaN/inf."""
    path = next((folder / n for n in EMBEDDING_FILES if (folder / n).exists()), None)
    if path is None:
        raise DataError(f"{folder / EMBEDDING_FILES[0]}: file not found (nor .npy)")
    return load_matrix(path), path


def _model_order(folder: Path) -> tuple[list[str] | None, np.ndarray | None, Path | None]:
    path = _table_path(folder, "model_order", required=False)
    if path is None:
        return None, None, None
    table = read_table(path, ["model_id", "model_name"], ("cost",))
    ids = int_column(table, "model_id", path)
    names = table.column("model_name").to_pylist()
    if sorted(ids.tolist()) != list(range(len(ids))):
        raise DataError(f"{path}: model_id must be 0..{len(ids) - 1}, each once")
    ordered = [""] * len(ids)
    for i, name in zip(ids.tolist(), names):
        ordered[i] = str(name)
    cost = None
    if "cost" in table.column_names:
        values = float_column(table, "cost", path)
        _check_costs(values, path, "cost")
        cost = np.full(len(ids), np.nan)
        cost[ids] = values
    return ordered, cost, path


def _check_costs(values: np.ndarray, path: Path, name: str) -> None:
    bad = np.flatnonzero(values < 0)
    if bad.size:
        raise DataError(f"{path} line {bad[0] + 2}: {name} {values[bad[0]]:g} is negative")


def load_folder(folder: Path, options: DataOptions | None = None) -> RouterData:
    """Load an EmbedLLM-layout folder (``.csv`` or ``.parquet`` tables). Without an embeddings
    file, a ``prompt`` column (EmbedLLM's own train.csv has one) gives each question's text, to
    be embedded with ``options.encoder``."""
    options = options or DataOptions()
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found (or give 'synthetic', or a built-in name)")
    if _table_path(folder, "train", required=False) is None:
        raise DataError(not_a_layout(folder))
    has_file = any((folder / n).exists() for n in EMBEDDING_FILES)
    own, emb_path = load_embeddings(folder) if has_file else (None, folder / EMBEDDING_FILES[0])
    order, model_cost, order_path = _model_order(folder)

    tables: dict[
        str, tuple[Path, np.ndarray, np.ndarray, np.ndarray, list[Any] | None, np.ndarray | None]
    ] = {}
    prompts: dict[int, str] = {}
    task_by_q: dict[int, str] = {}
    # Prompt texts are read only when they will be embedded: in EmbedLLM's own layout they are
    # repeated on every row (most of a 1.5 GB train.csv).
    want_texts = own is None or options.encoder is not None
    optional = ("model_name", "cost", "task", "prompt") if want_texts else ("model_name", "cost", "task")
    for split in SPLITS:
        path = _table_path(folder, split)
        assert path is not None
        t = read_table(path, ["prompt_id", "model_id", "label"], optional)
        if t.num_rows == 0:
            raise DataError(f"{path}: no rows (the {split} split is empty)")
        q = int_column(t, "prompt_id", path)
        m = int_column(t, "model_id", path)
        y = label_column(t, "label", path, options.threshold)
        names = t.column("model_name").to_pylist() if "model_name" in t.column_names else None
        cost = float_column(t, "cost", path) if "cost" in t.column_names else None
        if cost is not None:
            _check_costs(cost, path, "cost")
        if "prompt" in t.column_names:
            first = np.unique(q, return_index=True)[1]
            texts = t.column("prompt").take(first).to_pylist()
            prompts.update((int(q[i]), str(p)) for i, p in zip(first, texts) if p is not None)
        rows = own.shape[0] if own is not None else None
        bad = np.flatnonzero((q < 0) | (q >= (rows if rows is not None else np.iinfo(np.int64).max)))
        if bad.size:
            raise DataError(
                f"{path} line {bad[0] + 2}: prompt_id {q[bad[0]]} is outside {emb_path.name} "
                f"(rows 0..{(rows or 0) - 1})"
            )
        if "task" in t.column_names:  # a task per pair row: its question's task
            first = np.unique(q, return_index=True)[1]
            values = t.column("task").take(first).to_pylist()
            task_by_q.update((int(q[i]), str(v)) for i, v in zip(first, values) if v not in (None, ""))
        tables[split] = (path, q, m, y, names, cost)
    if own is None and not prompts:
        raise DataError(
            f"{folder / EMBEDDING_FILES[0]}: file not found (nor .npy, nor a prompt column in the tables "
            "to embed with --encoder)"
        )
    n_prompts = own.shape[0] if own is not None else 1 + max(int(v[1].max()) for v in tables.values())
    texts_all: list[str] | None = None
    if prompts:
        # Rows of the embeddings no table names get an empty text (they are never trained on).
        texts_all = [prompts.get(i, "") for i in range(n_prompts)]
    X, encoder = embeddings_for(
        str(folder),
        n_prompts,
        options,
        texts=texts_all,
        template="{prompt}",
        own=own,
        texts_error=None if prompts else "its tables have no prompt column",
    )

    num_models = len(order) if order is not None else 1 + max(int(v[2].max()) for v in tables.values())
    model_names = order or [""] * num_models
    Y = np.zeros((X.shape[0], num_models), dtype=np.float32)
    mask = np.zeros((X.shape[0], num_models), dtype=bool)
    has_costs = model_cost is not None or any(v[5] is not None for v in tables.values())
    C = np.full((X.shape[0], num_models), np.nan, dtype=np.float32) if has_costs else None
    if C is not None and model_cost is not None:
        C[:] = model_cost[None, :]
    owner = np.full(X.shape[0], -1, dtype=np.int8)
    splits: dict[str, np.ndarray] = {}
    for s_idx, (split, (path, q, m, y, names, cost)) in enumerate(tables.items()):
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
        if C is not None and cost is not None:
            known = ~np.isnan(cost)
            C[q[known], m[known]] = cost[known]
        splits[split] = questions
    model_names = [n or f"model_{i}" for i, n in enumerate(model_names)]
    tasks, task_names = None, None
    if task_by_q:
        tasks = np.zeros(X.shape[0], dtype=np.int32)  # rows no split names: never read
        tasks[list(task_by_q)], task_names = index_tasks(list(task_by_q.values()))
    return RouterData(
        X,
        Y,
        mask,
        model_names,
        splits,
        source=str(folder),
        cost=C,
        texts=texts_all,
        encoder=encoder,
        tasks=tasks,
        task_names=task_names,
    )


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


def write_parquet_layout(data: RouterData, dest: Path) -> None:
    """Write ``data`` as an EmbedLLM-layout folder with parquet tables and .npy embeddings
    (costs, when the data has them, as a ``cost`` column in each split).

    The folder is written beside ``dest`` under a temp name and renamed into place when whole:
    a crash or a full disk leaves no half-written ``dest`` (an empty one stays empty), so a rerun
    works once space is freed.

    Raises:
        OSError: Naming ``dest`` (ENOSPC on a full disk); the temp folder is removed.
    """
    from search.files.atomic import current_umask  # not at the top: search.data stays torch-free

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        _write_layout(data, tmp)
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes it 0700
        if dest.is_dir():
            dest.rmdir()  # empty: the command refuses a folder with files in it
        os.rename(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        # numpy's short write says "N requested and M written", with no errno: a full disk too
        short = re.search(r"\d+ requested and \d+ written", str(exc)) is not None
        code = getattr(exc, "errno", None) or (errno.ENOSPC if "No space left" in str(exc) or short else None)
        if isinstance(exc, OSError) and code is not None:
            raise OSError(code, os.strerror(code), str(dest)) from exc
        raise


def _labels(y: np.ndarray, graded: bool) -> pa.Array:
    """0/1 labels as int8 (small files); grades as float32, kept."""
    return pa.array(y.astype(np.float32), pa.float32()) if graded else pa.array(y.astype(np.int8), pa.int8())


def _write_layout(data: RouterData, dest: Path) -> None:
    names = np.asarray(data.model_names, dtype=object)
    graded = is_graded(data.Y, data.mask)
    for split in SPLITS:
        idx = data.splits[split]
        qq, mm = np.nonzero(data.mask[idx])
        q = idx[qq]
        columns: dict[str, Any] = {
            "prompt_id": pa.array(q, pa.int64()),
            "model_id": pa.array(mm, pa.int64()),
            "label": _labels(data.Y[q, mm], graded),
            "model_name": pa.array(names[mm].tolist(), pa.string()),
        }
        if data.tasks is not None and data.task_names:  # each pair's question's task, read back
            columns["task"] = pa.array([data.task_names[t] for t in data.tasks[q].tolist()], pa.string())
        if data.cost is not None:
            c = data.cost[q, mm]
            columns["cost"] = pa.array(c.astype(np.float64), pa.float64(), mask=np.isnan(c))
        pq.write_table(pa.table(columns), dest / f"{split}.parquet")
    order = pa.table(
        {
            "model_id": pa.array(np.arange(data.num_models), pa.int64()),
            "model_name": data.model_names,
        }
    )
    pq.write_table(order, dest / "model_order.parquet")
    np.save(dest / "question_embeddings.npy", data.X)
