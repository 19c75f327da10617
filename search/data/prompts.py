"""Prompts to route, from a file: ``.txt`` (one prompt per line), ``.jsonl``/``.json`` records or
``.csv``/``.parquet`` rows. A record becomes text with the router's template (the one its
training data was embedded with), so a prompt is embedded as the training questions were. A
template of one text field (``{question}``) takes any text field (``question``, ``query``,
``prompt``, ``text``); a template of more fields needs every one (``{question}`` and
``{options}`` for mmlu-pro's routers), and a record without one is an error naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.data.encode.encoder import EncoderIdentity
from search.data.encode.template import TEXT_FIELDS, Template
from search.data.tables import read_columns
from search.errors import DataError
from search.parse import ParseError, load_json, read_text

SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")


def read_rows(path: Path, what: str = "prompts file") -> list[Any]:
    """The rows of a ``.txt`` (its non-blank lines), ``.jsonl``/``.json`` (records) or
    ``.csv``/``.parquet`` file (one dict per row), each way it cannot be read one DataError."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".parquet"):
            return read_columns(path).to_pylist()
        text = read_text(path, what)
        if suffix == ".txt":
            return [line for line in text.splitlines() if line.strip()]
        if suffix == ".jsonl":
            return [
                load_json(line, str(path), first_line=i)
                for i, line in enumerate(text.splitlines(), 1)
                if line.strip()
            ]
        rows = load_json(text, str(path))
    except ParseError as exc:
        raise DataError(str(exc)) from exc
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of records")
    return rows


TASK_FIELDS = ("task", "category")  # a record's task, for routers with a task prior


def read_prompts(
    path: Path, identity: EncoderIdentity | None, tasks: list[str | None] | None = None
) -> list[str]:
    """The prompts of ``path``, rendered with the router's template (see the module doc); each
    record's task (its ``task`` or ``category`` field, None without one) is appended to
    ``tasks`` when a list is given.

    Raises:
        DataError: Another format, no prompts, or a record that lacks a field the template uses.
    """
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"--prompts {path}: give a {', '.join(SUFFIXES)} file")
    rows = read_rows(path)
    if not rows:
        raise DataError(f"{path}: no prompts in it")
    template = Template(identity.template) if identity and identity.template else Template("{prompt}")
    single = (
        len(template.fields) == 1
        and template.fields[0] in TEXT_FIELDS
        and template.spec == f"{{{template.fields[0]}}}"
    )
    texts: list[str] = []
    for i, row in enumerate(rows):
        where = f"{path} line {i + 1}" if path.suffix.lower() in (".txt", ".jsonl") else f"{path}: prompt {i}"
        if isinstance(row, str):
            texts.append(row)
            if tasks is not None:
                tasks.append(None)
            continue
        if not isinstance(row, dict):
            raise DataError(f"{where}: a prompt is a text or a record, got {type(row).__name__}")
        if tasks is not None:
            task = next((row[f] for f in TASK_FIELDS if row.get(f) is not None), None)
            if task is not None and not isinstance(task, str):
                raise DataError(f"{where}: task must be a text, got {task!r}")
            tasks.append(task)
        if single and template.fields[0] not in row:
            field = next((f for f in TEXT_FIELDS if isinstance(row.get(f), str)), None)
            if field is None:
                raise DataError(f"{where}: no text field ({', '.join(TEXT_FIELDS)})")
            texts.append(row[field])
            continue
        texts.append(template.render(row, where))
    return texts
