"""Prompts to route, from a file: ``.txt`` (one prompt per line), ``.jsonl``/``.json`` records or
``.csv``/``.parquet`` rows. A record becomes text with the router's template (the one its
training data was embedded with), so a prompt is embedded as the training questions were. A
template of one text field (``{question}``) takes any text field (``question``, ``query``,
``prompt``, ``text``); a template of more fields needs every one (``{question}`` and
``{options}`` for mmlu-pro's routers), and a record without one is an error naming it.

A prompts file is read as a stream, a batch at a time (:func:`iter_prompts`): the memory it
takes does not grow with its length. It must be a regular file (not a device or a pipe) of at
most ``MAX_PROMPTS_BYTES``; a ``.json`` file, one document, at most ``MAX_JSON_BYTES`` (use
``.jsonl`` for more). An empty or blank prompt is an error naming its line, as the server's 400.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.data.encode.encoder import EncoderIdentity
from search.data.encode.template import TEXT_FIELDS, Template
from search.data.tables import iter_table_rows
from search.errors import DataError
from search.files.parse import ParseError, decode_utf8, load_json, read_text

SUFFIXES = (".txt", ".jsonl", ".json", ".csv", ".parquet")
MAX_PROMPTS_BYTES = 4 << 30  # 4 GiB: read as a stream, a batch at a time
MAX_JSON_BYTES = 256 << 20  # a .json file is one document, parsed whole
BATCH = 4096  # prompts per batch
TASK_FIELDS = ("task", "category")  # a record's task, for routers with a task prior


def check_file(path: Path, what: str = "prompts file") -> int:
    """The size of ``path`` after checking it is a regular file of a known kind, not too large.

    Raises:
        DataError: One line: another suffix, missing, a folder, a device or pipe, too large.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{path}: a {what} is a {', '.join(SUFFIXES)} file")
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DataError(f"{path}: not readable ({exc.strerror})") from exc
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: is a folder; give a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a device or a pipe); give a {what}")
    limit = MAX_JSON_BYTES if suffix == ".json" else MAX_PROMPTS_BYTES
    if info.st_size > limit:
        more = " (use .jsonl, read as a stream, for more)" if suffix == ".json" else ""
        raise DataError(f"{path}: {info.st_size:,} bytes; a {what} may be at most {limit:,} bytes{more}")
    return int(info.st_size)


def iter_rows(path: Path, what: str = "prompts file") -> Iterator[tuple[str, Any]]:
    """``(where, row)`` for each row of the file, as a stream (``check_file`` first): a
    ``.txt`` line, a ``.jsonl``/``.json`` record, a ``.csv``/``.parquet`` row as a dict."""
    check_file(path, what)
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".parquet"):
            i = 0
            for rows in iter_table_rows(path, BATCH):
                for row in rows:
                    yield f"{path}: row {i}", row
                    i += 1
            return
        if suffix == ".json":
            rows = load_json(read_text(path, what, MAX_JSON_BYTES), str(path))
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected a list of records")
            for i, row in enumerate(rows):
                yield f"{path}: prompt {i}", row
            return
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                line = decode_utf8(raw, f"{path} line {number}").removeprefix("\ufeff")
                if not line.strip():
                    continue
                where = f"{path} line {number}"
                yield (
                    where,
                    (
                        line.rstrip("\r\n")
                        if suffix == ".txt"
                        else load_json(line, str(path), first_line=number)
                    ),
                )
    except ParseError as exc:
        raise DataError(str(exc)) from exc
    except OSError as exc:
        raise DataError(f"{path}: not readable ({exc.strerror})") from exc


def read_rows(path: Path, what: str = "prompts file") -> list[Any]:
    """Every row of the file (see :func:`iter_rows`), for a file read whole (a tasks file)."""
    return [row for _, row in iter_rows(path, what)]


def count_prompts(path: Path) -> int:
    """How many prompts the file holds, read as a stream (what a routing will say before it
    starts)."""
    return sum(1 for _ in iter_rows(path))


def iter_prompts(
    path: Path, identity: EncoderIdentity | None, batch: int = BATCH
) -> Iterator[tuple[list[str], list[str | None]]]:
    """The file's prompts rendered with the router's template (see the module doc), ``batch``
    at a time, each with its task (a record's ``task`` or ``category`` field; None without one).

    Raises:
        DataError: Another format, no prompts, an empty prompt, or a record that lacks a field
            the template uses (naming its line).
    """
    template = Template(identity.template) if identity and identity.template else Template("{prompt}")
    single = (
        len(template.fields) == 1
        and template.fields[0] in TEXT_FIELDS
        and template.spec == f"{{{template.fields[0]}}}"
    )
    texts: list[str] = []
    tasks: list[str | None] = []
    seen = 0
    for where, row in iter_rows(path):
        text, task = _prompt(row, where, template, single)
        if not text.strip():
            raise DataError(f"{where}: the prompt is empty")
        texts.append(text)
        tasks.append(task)
        seen += 1
        if len(texts) == batch:
            yield texts, tasks
            texts, tasks = [], []
    if texts:
        yield texts, tasks
    if not seen:
        raise DataError(f"{path}: no prompts in it")


def _prompt(row: Any, where: str, template: Template, single: bool) -> tuple[str, str | None]:
    if isinstance(row, str):
        return row, None
    if not isinstance(row, dict):
        raise DataError(f"{where}: a prompt is a text or a record, got {type(row).__name__}")
    task = next((row[f] for f in TASK_FIELDS if row.get(f) is not None), None)
    if task is not None and not isinstance(task, str):
        raise DataError(f"{where}: task must be a text, got {task!r}")
    if single and template.fields[0] not in row:
        field = next((f for f in TEXT_FIELDS if isinstance(row.get(f), str)), None)
        if field is None:
            raise DataError(f"{where}: no text field ({', '.join(TEXT_FIELDS)})")
        return row[field], task
    return template.render(row, where), task


def read_prompts(
    path: Path, identity: EncoderIdentity | None, tasks: list[str | None] | None = None
) -> list[str]:
    """Every prompt of the file at once (see :func:`iter_prompts`); each one's task is appended
    to ``tasks`` when a list is given."""
    texts: list[str] = []
    for part, part_tasks in iter_prompts(path, identity):
        texts += part
        if tasks is not None:
            tasks += part_tasks
    return texts
