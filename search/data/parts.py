"""Sources given per split: several files for train, val and test, as routing sets ship them
(one file per task and split). ``--data train=a.json --data train=b.json --data test=c.json``,
or in a space ``data: {train: [a.json, b.json], test: [c.json]}``.

Each file is a table or records file (``convert.py``); its own split column, if any, is not
used. Each question keeps its file's stem as its task, without a trailing split name
(``mmlu_train.json`` and ``mmlu_test.json`` are both task ``mmlu``); a file named after its split
alone (``train.jsonl``) names no task, and data whose files all are has none. LLM sets that differ
between files are joined, the pairs a file does not score unobserved. Without a val part, a
seeded 10% of the train questions are val. The questions' texts are embedded with the encoder
(an embeddings file cannot say which of many files a row belongs to).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from search.data.convert import RECORD_SUFFIXES, TABLE_SUFFIXES, Parsed, assemble, parse_records, parse_wide
from search.data.data_options import DataOptions
from search.data.embedding import embeddings_for
from search.data.router_data import NO_TASK, SPLITS, RouterData
from search.errors import DataError

VAL_SHARE = 0.1


def parse_parts(values: Sequence[str]) -> dict[str, list[str]] | None:
    """``["train=a.json", "test=b.json", ...]`` as ``{split: [paths]}``; None for one plain
    source (a single value without ``split=``).

    Raises:
        DataError: Parts mixed with a plain source, an unknown split, or no train or test part.
    """
    if len(values) == 1 and not re.match(r"^(train|val|test)=", values[0]):
        return None
    parts: dict[str, list[str]] = {}
    for value in values:
        split, eq, path = value.partition("=")
        if not eq or split not in SPLITS or not path:
            raise DataError(
                f"--data {value!r}: give one source, or parts as split=FILE (splits: {', '.join(SPLITS)})"
            )
        parts.setdefault(split, []).append(path)
    return check_parts(parts)


def data_source(values: Sequence[str] | None) -> str | dict[str, list[str]] | None:
    """``--data`` values (or SRC...) as one source spec, parts, or None when none was given."""
    if not values:
        return None
    parts = parse_parts(list(values))
    return parts if parts is not None else values[0]


def check_parts(parts: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    unknown = [s for s in parts if s not in SPLITS]
    if unknown:
        raise DataError(f"data part {unknown[0]!r}: valid: {', '.join(SPLITS)}")
    for split in ("train", "test"):
        if not parts.get(split):
            raise DataError(f"data parts: no {split} part; give {split}=FILE (val is optional)")
    return {s: list(parts[s]) for s in SPLITS if parts.get(s)}


def describe_parts(parts: Mapping[str, Sequence[str]]) -> str:
    """The parts as one source string (recorded, shown, and read back by ``load_parts``)."""
    return ";".join(f"{s}={','.join(str(p) for p in parts[s])}" for s in SPLITS if parts.get(s))


SPLIT_NAMES = ("train", "val", "valid", "validation", "dev", "test")


def task_of(path: Path) -> str | None:
    """A part's task from its file's name, less a trailing split name (``math_train.jsonl``:
    ``math``); None for a file named after its split alone (``train.jsonl`` names no task)."""
    if path.stem.lower() in SPLIT_NAMES:
        return None
    split = r"[-_.](train|val|valid|validation|dev|test)$"
    return re.sub(split, "", path.stem, flags=re.IGNORECASE) or path.stem


def _parse(path: Path, options: DataOptions) -> Parsed:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DataError(f"{path}: file not found (a data part is a table or records file)")
    if suffix in TABLE_SUFFIXES:
        return parse_wide(path, options)
    if suffix in RECORD_SUFFIXES:
        return parse_records(path, options)
    raise DataError(f"{path}: a data part is a .csv/.parquet table or .json/.jsonl records")


def load_parts(parts: Mapping[str, Sequence[str]], options: DataOptions) -> RouterData:
    """One RouterData of every part (see the module doc)."""
    parts = check_parts(parts)
    if options.embeddings is not None:
        raise DataError(
            "--embeddings with data parts: a file's rows cannot say which part they are; give --encoder"
        )
    read = [
        (split, Path(p), _parse(Path(p), options.merged(align="row")))
        for split in parts
        for p in parts[split]
    ]
    names: list[str] = []
    for _, _, parsed in read:
        names += [n for n in parsed.names if n not in names]
    col = {n: j for j, n in enumerate(names)}
    total = sum(parsed.n for _, _, parsed in read)
    Y = np.full((total, len(names)), np.nan)
    has_cost = any(parsed.cost is not None for _, _, parsed in read)
    cost = np.full((total, len(names)), np.nan, dtype=np.float32) if has_cost else None
    texts: list[str] = []
    task_names: list[str] = []
    tasks = np.zeros(total, dtype=np.int32)
    owner: list[str] = []
    start = 0
    for split, path, parsed in read:
        if parsed.texts is None:
            raise DataError(f"{path}: no texts to embed ({parsed.texts_error})")
        cols = [col[n] for n in parsed.names]
        rows = slice(start, start + parsed.n)
        Y[rows, cols] = parsed.Y
        if cost is not None and parsed.cost is not None:
            cost[rows, cols] = parsed.cost
        texts += parsed.texts
        # A part's own task column or field names its questions' tasks; else the file's stem.
        for i, task in enumerate(parsed.task_values or [task_of(path) or NO_TASK] * parsed.n):
            if task not in task_names:
                task_names.append(task)
            tasks[start + i] = task_names.index(task)
        owner += [split] * parsed.n
        start += parsed.n
    splits = {s: np.flatnonzero(np.asarray(owner) == s) for s in SPLITS}
    if splits["val"].size == 0:
        train = splits["train"]
        rng = np.random.default_rng(options.seed)
        pick = np.sort(rng.choice(train.size, size=max(1, round(VAL_SHARE * train.size)), replace=False))
        splits["val"] = train[pick]
        splits["train"] = np.delete(train, pick)
    source = describe_parts(parts)
    merged = Parsed(Path(source), Y, names, cost, None, None, texts, read[0][2].template)
    X, encoder = embeddings_for(source, total, options, texts=texts, template=merged.template)
    if task_names == [NO_TASK]:  # every file named after its split alone: the data has no tasks
        data = assemble(merged, X, splits, encoder=encoder)
    else:
        data = assemble(merged, X, splits, encoder=encoder, tasks=tasks, task_names=task_names)
    data.source = source
    return data


def parts_of(spec: str) -> dict[str, list[str]] | None:
    """A source string that names parts (``train=a.json,b.json;test=c.json``, as
    ``describe_parts`` writes it) as parts; None for any other source."""
    if not re.match(r"^(train|val|test)=", spec):
        return None
    parts: dict[str, list[str]] = {}
    for item in spec.split(";"):
        split, _, paths = item.partition("=")
        parts.setdefault(split, []).extend(p for p in paths.split(",") if p)
    return check_parts(parts)
