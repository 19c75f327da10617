"""Tasks from a side file (``--tasks FILE``, ``data: {tasks: FILE}``): a table (``.csv``,
``.parquet``) or records (``.jsonl``, ``.json``) that joins each question to its task, by id or
by its exact text.

Each row has a task (a ``task`` or ``category`` field, or ``--task-column``) and either an id
(``--id-column``, ``id``, ``prompt_id`` or ``question_id``, the first it has; joined to the
data's question ids) or a text (``question``, ``query``, ``prompt`` or ``text``; joined to each
question's text as it was embedded, leading and trailing whitespace aside). The file's tasks
replace any the data had. A question no row names takes the task ``(no task)``; how many matched
is said in one line (``RouterData.notes``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.data.data_options import DataOptions
from search.data.encode.template import TEXT_FIELDS
from search.data.prompts import read_rows
from search.data.router_data import NO_TASK, RouterData, index_tasks
from search.errors import DataError

TABLES = (".csv", ".parquet")
RECORDS = (".jsonl", ".json")
ID_FIELDS = ("id", "prompt_id", "question_id")
TASK_FIELDS = ("task", "category")


def _rows(path: Path) -> list[Any]:
    if path.suffix.lower() not in TABLES + RECORDS:
        raise DataError(f"--tasks {path}: give a {', '.join(TABLES + RECORDS)} file")
    if not path.is_file():
        raise DataError(f"--tasks {path}: file not found")
    return read_rows(path, "tasks file")


def _pick(fields: set[str], wanted: str | None, defaults: tuple[str, ...]) -> str | None:
    if wanted is not None:
        return wanted if wanted in fields else None
    return next((f for f in defaults if f in fields), None)


def attach_tasks(data: RouterData, path: str, options: DataOptions) -> RouterData:
    """``data`` with each question's task from the file at ``path`` (module doc).

    Raises:
        DataError: The file cannot be read, has no task or no key field, names one question
            with two tasks, or matches no question at all.
    """
    file = Path(path)
    rows = _rows(file)
    if not rows:
        raise DataError(f"--tasks {file}: no rows in it")
    if not all(isinstance(r, dict) for r in rows):
        raise DataError(f"--tasks {file}: every row must be a record with a task and an id or a text")
    fields = set().union(*(r.keys() for r in rows))
    task_field = _pick(fields, options.task_column, TASK_FIELDS)
    if task_field is None:
        want = options.task_column or " or ".join(TASK_FIELDS)
        raise DataError(f"--tasks {file}: no {want} field (has {', '.join(sorted(fields))})")
    ids = tuple(dict.fromkeys([options.id_column, *ID_FIELDS] if options.id_column else ID_FIELDS))
    id_field = _pick(fields, None, ids) if data.ids is not None else None
    text_field = _pick(fields, None, TEXT_FIELDS)
    if id_field is None and (text_field is None or data.texts is None):
        have = "ids" if data.ids is not None else "texts" if data.texts is not None else "no ids or texts"
        raise DataError(
            f"--tasks {file}: nothing to join on: the file needs an id ({', '.join(ID_FIELDS)}) or a text "
            f"({', '.join(TEXT_FIELDS)}) field the data has (it has {have})"
        )
    by = id_field or text_field
    assert by is not None
    table: dict[Any, str] = {}
    for i, row in enumerate(rows):
        key, task = row.get(by), row.get(task_field)
        if key is None or task is None:
            continue
        if not isinstance(task, (str, int)) or isinstance(task, bool) or str(task) == "":
            raise DataError(f"--tasks {file}: row {i}: task {task!r} is not a name")
        key = _key(key, id_field is not None)
        if table.get(key, str(task)) != str(task):
            raise DataError(
                f"--tasks {file}: row {i}: {by} {_show(key)} has two tasks ({table[key]!r}, {str(task)!r})"
            )
        table[key] = str(task)
    keys = (
        [_key(v, True) for v in data.ids.tolist()]  # type: ignore[union-attr]
        if id_field is not None
        else [t.strip() for t in data.texts or ()]
    )
    values = [table.get(k) for k in keys]
    matched = sum(v is not None for v in values)
    if matched == 0:
        example = _show(next(iter(table), None))
        raise DataError(f"--tasks {file}: no question matched by {by} ({len(table):,} rows; e.g. {example})")
    tasks, names = index_tasks([v if v is not None else NO_TASK for v in values])
    n = len(values)
    kinds = len(set(table.values()))
    note = f"--tasks {file}: {matched:,} of {n:,} questions matched a task by {by} ({kinds} tasks)"
    if matched < n:
        note += f"; {n - matched:,} matched none and take the task {NO_TASK!r}"
    if data.task_names:
        note += f"; they replace the data's own {len(data.task_names)} tasks"
    data.tasks, data.task_names = tasks, names
    data.notes.append(note)
    return data


def _key(value: Any, is_id: bool) -> Any:
    if is_id:
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return str(value).strip()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
