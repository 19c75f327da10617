"""Other shapes of routing data, read into RouterData (``search data convert`` writes them out in
the parquet layout).

- Wide tables (``.csv`` or ``.parquet``): one row per question, one score column per LLM, as
  RouterBench writes them. When ``<llm>|total_cost`` columns exist, they name the LLMs and give
  each call's cost; otherwise every numeric column but the id and split columns is an LLM.
- Records (``.json`` list or ``.jsonl`` lines), as LLMRouter and RouterDC write them:
  ``{"id" or "question": ..., "scores": {llm: score}, "costs": {llm: cost}?, "split": ...?}``.

Scores are 0/1 correctness or grades in [0, 1], or any number with ``threshold`` (score >=
threshold is correct; ``scores.py``); an empty or missing score is an unobserved pair. A
question's task is its ``task`` (or ``category``) field or string column, when it has one. A
question's text (a ``question``, ``query``, ``prompt`` or ``text`` field or string column, or
what a template makes of its fields) is kept for the encoder; the embeddings come from
``embedding.py`` (a file, aligned by row/record order or by the integer id column, or the texts
embedded). Without a split column the questions are
split 80/10/10, seeded.

Reading is parsing only (``Parsed``): ``sources.load_data`` embeds and assembles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from search.data.data_options import DataOptions
from search.data.encode.template import Template, default_template
from search.data.router_data import SPLITS, RouterData, index_tasks, split_by_question
from search.data.scores import check_scores, thresholded
from search.data.tables import float_column, in_int64, label_column, read_columns, types_of
from search.errors import DataError
from search.files.parse import ParseError, load_json, read_text

TABLE_SUFFIXES = (".csv", ".parquet")
RECORD_SUFFIXES = (".json", ".jsonl")
ID_COLUMNS = ("id", "prompt_id", "question_id", "sample_id")
NOT_MODELS = {"split", "category", "category_id", "eval_name", "label", "task"}
TASK_FIELDS = ("task", "category")  # where a question's task is, unless --task-column says
COST_SUFFIX = "|total_cost"


def _numeric(table_types: dict[str, pa.DataType], name: str) -> bool:
    t = table_types[name]
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_null(t)


def _splits(values: list[Any] | None, n: int, seed: int, source: Path) -> dict[str, np.ndarray]:
    if values is None:
        return split_by_question(n, seed)
    labels = np.asarray([str(v).strip().lower() if v is not None else "" for v in values])
    bad = np.flatnonzero(~np.isin(labels, SPLITS))
    if bad.size:
        raise DataError(
            f"{source}: split {values[bad[0]]!r} of question {bad[0]} is not one of {', '.join(SPLITS)}"
        )
    splits = {s: np.flatnonzero(labels == s) for s in SPLITS}
    empty = [s for s, idx in splits.items() if idx.size == 0]
    if empty:
        raise DataError(f"{source}: the {empty[0]} split is empty")
    return splits


@dataclass
class Parsed:
    """A table or records file, read but not embedded.

    Attributes:
        Y: float [n, M] scores, NaN where unobserved.
        ids: each question's integer id (``--align id``), else None.
        texts: each question's text (rendered with ``template``), or None.
    """

    source: Path
    Y: np.ndarray
    names: list[str]
    cost: np.ndarray | None = None
    split_values: list[Any] | None = None
    ids: np.ndarray | None = None
    texts: list[str] | None = None
    template: str | None = None
    texts_error: str | None = None  # why there are no texts, said when they are needed
    task_values: list[str] | None = None  # each question's task, from a task column or field

    @property
    def n(self) -> int:
        return int(self.Y.shape[0])

    def splits(self, seed: int) -> dict[str, np.ndarray]:
        return _splits(self.split_values, self.n, seed, self.source)


def assemble(parsed: Parsed, X: np.ndarray, splits: dict[str, np.ndarray], **extra: Any) -> RouterData:
    """RouterData of a parsed source and its embeddings; ``extra``: encoder, tasks, task_names."""
    Y = parsed.Y
    mask = ~np.isnan(Y)
    if parsed.task_values is not None and "tasks" not in extra:
        extra["tasks"], extra["task_names"] = index_tasks(parsed.task_values)
    if not mask.any(axis=1).all():
        row = int(np.flatnonzero(~mask.any(axis=1))[0])
        raise DataError(f"{parsed.source}: question {row} has no score for any LLM")
    return RouterData(
        X,
        np.where(mask, Y, 0.0).astype(np.float32),
        mask,
        parsed.names,
        splits,
        source=str(parsed.source),
        cost=parsed.cost,
        texts=parsed.texts,
        ids=parsed.ids,
        **extra,
    )


def _render(
    template: Template | None, rows: list[dict[str, Any]], where: Any, given: bool
) -> tuple[list[str] | None, str | None]:
    """``(texts, why there are none)``. A given template must render every row; the default
    one (a text field) may be missing somewhere, which matters only if the texts are needed."""
    if template is None:
        return None, "it has no question, query, prompt or text field (or give --template)"
    try:
        return [template.render(row, where(i)) for i, row in enumerate(rows)], None
    except DataError as exc:
        if given:
            raise
        return None, str(exc)


def _template(options: DataOptions, fields: list[str], source: Path) -> Template | None:
    """The template a source's texts are rendered with: the one given, or its text field."""
    if options.template is None:
        return default_template(fields)
    template = Template(options.template)
    missing = [f for f in template.fields if f not in fields]
    if missing:
        raise DataError(f"{source}: no {missing[0]!r} field, which the template {template.spec!r} uses")
    return template


def _task_field(options: DataOptions, text_fields: list[str], fields: list[str], source: Path) -> str | None:
    """The column or field that names each question's task: ``--task-column``, else the first
    text one of TASK_FIELDS, else none."""
    if options.task_column is not None:
        if options.task_column not in fields:
            raise DataError(f"{source}: no task column {options.task_column!r}; has {fields}")
        return options.task_column
    return next((f for f in TASK_FIELDS if f in text_fields), None)


def _task_values(values: list[Any], source: Path, unit: str, first: int) -> list[str]:
    bad = [
        i for i, v in enumerate(values) if v is None or isinstance(v, (dict, list)) or str(v).strip() == ""
    ]
    if bad:
        raise DataError(f"{source} {unit} {bad[0] + first}: no task (an empty task column or field)")
    return [str(v).strip() for v in values]


def parse_wide(path: Path, options: DataOptions) -> Parsed:
    """A wide table (see the module doc)."""
    id_column, threshold = options.id_column, options.threshold
    types = types_of(path)
    columns = list(types)
    text_columns = [c for c in columns if pa.types.is_string(types[c]) or pa.types.is_large_string(types[c])]
    template = _template(options, columns if options.template else text_columns, path)
    if id_column is not None and id_column not in columns:
        raise DataError(f"{path}: no id column {id_column!r}; has {columns}")
    id_col = id_column or next((c for c in ID_COLUMNS if c in columns), None)
    costs = {c[: -len(COST_SUFFIX)]: c for c in columns if c.endswith(COST_SUFFIX)}
    if costs:
        names = list(costs)
        missing = [n for n in names if n not in columns]
        if missing:
            raise DataError(f"{path}: {missing[0]}{COST_SUFFIX} has no score column {missing[0]!r}")
    else:
        names = [
            c
            for c in columns
            if c != id_col
            and c not in ID_COLUMNS
            and c not in NOT_MODELS
            and "|" not in c
            and _numeric(types, c)
        ]
    if not names:
        raise DataError(f"{path}: no score columns (numbers, one per LLM); has {columns}")
    fields = template.fields if template is not None else []
    labels = text_columns + [c for c in columns if pa.types.is_dictionary(types[c])]
    task_col = _task_field(options, labels, columns, path)
    wanted = [
        c for c in [id_col, "split" if "split" in columns else None, task_col, *names, *costs.values()] if c
    ]
    wanted += [c for c in fields if c not in wanted]
    table = read_columns(path, wanted)
    n = table.num_rows
    if n == 0:
        raise DataError(f"{path}: no rows")
    Y = np.stack([label_column(table, m, path, threshold, allow_empty=True) for m in names], axis=1)
    cost = None
    if costs:
        cost = np.stack([float_column(table, costs[m], path) for m in names], axis=1).astype(np.float32)
        bad = np.argwhere(cost < 0)
        if bad.size:
            raise DataError(f"{path} line {bad[0][0] + 2}: {costs[names[bad[0][1]]]} is negative")
    ids = None
    if options.align == "id":
        if id_col is None:
            raise DataError(f"{path}: --align id needs an id column ({', '.join(ID_COLUMNS)} or --id-column)")
        ids = in_int64(float_column(table, id_col, path, allow_empty=False), id_col, path)
    rows = table.select(fields).to_pylist() if template is not None else []
    texts, why = _render(template, rows, lambda i: f"{path} line {i + 2}", options.template is not None)
    split_values = table.column("split").to_pylist() if "split" in table.column_names else None
    task_values = _task_values(table.column(task_col).to_pylist(), path, "line", 2) if task_col else None
    return Parsed(
        path, Y, names, cost, split_values, ids, texts, template.spec if template else None, why, task_values
    )


def _read_records(path: Path) -> list[dict[str, Any]]:
    try:
        text = read_text(path, "records file")
        if path.suffix.lower() == ".jsonl":
            records = [
                load_json(line, str(path), first_line=number)
                for number, line in enumerate(text.splitlines(), start=1)
                if line.strip()
            ]
        else:
            records = load_json(text, str(path))
    except ParseError as exc:
        raise DataError(str(exc)) from exc
    if not isinstance(records, list) or not records:
        raise DataError(f"{path}: expected a non-empty list of records")
    return records


def parse_records(path: Path, options: DataOptions) -> Parsed:
    """JSON or JSONL records (see the module doc)."""
    threshold = options.threshold
    records = _read_records(path)
    id_key = options.id_column or "id"
    names: list[str] = []
    for i, r in enumerate(records):
        if not isinstance(r, dict) or not isinstance(r.get("scores"), dict):
            raise DataError(f"{path}: record {i} has no 'scores' object ({{llm: score}})")
        if r.get("costs") is not None and not isinstance(r["costs"], dict):
            raise DataError(
                f"{path}: record {i}: 'costs' must be an object ({{llm: cost}}), got {r['costs']!r}"
            )
        names += [k for k in r["scores"] if k not in names]
    col = {m: j for j, m in enumerate(names)}
    n = len(records)
    Y = np.full((n, len(names)), np.nan, dtype=np.float64)
    cost = np.full((n, len(names)), np.nan, dtype=np.float32) if any("costs" in r for r in records) else None
    for i, r in enumerate(records):
        for m, score in r["scores"].items():
            if score is None:
                continue
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
                raise DataError(f"{path}: record {i}: score of {m!r} is {score!r}, not a number")
            Y[i, col[m]] = score
        for m, c in (r.get("costs") or {}).items():
            if m not in col or c is None:
                continue
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not c >= 0:
                raise DataError(f"{path}: record {i}: cost of {m!r} is {c!r}, not a number >= 0")
            assert cost is not None
            cost[i, col[m]] = c
    Y = thresholded(Y, threshold)
    check_scores(
        Y, lambda flat: f"{path}: record {flat // len(names)}: score of {names[flat % len(names)]!r}"
    )
    ids = None
    if options.align == "id":
        raw = [r.get(id_key) for r in records]
        bad_ids = [
            i
            for i, v in enumerate(raw)
            if isinstance(v, bool) or not isinstance(v, int) or not -(2**63) <= v < 2**63
        ]
        if bad_ids:
            raise DataError(
                f"{path}: record {bad_ids[0]}: {id_key!r} must be an integer row of the embeddings "
                f"(< 2^63), got {str(raw[bad_ids[0]])[:40]}"
            )
        ids = np.asarray(raw, dtype=np.int64)
    keys = list(dict.fromkeys(k for r in records for k in r))
    template = _template(options, keys, path)
    texts, why = _render(template, records, lambda i: f"{path}: record {i}", options.template is not None)
    split_values = [r.get("split") for r in records] if any("split" in r for r in records) else None
    string_keys = [k for k in keys if any(isinstance(r.get(k), str) for r in records)]
    task_key = _task_field(options, string_keys, keys, path)
    task_values = _task_values([r.get(task_key) for r in records], path, "record", 0) if task_key else None
    return Parsed(
        path, Y, names, cost, split_values, ids, texts, template.spec if template else None, why, task_values
    )
