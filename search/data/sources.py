"""Where router data comes from: a folder in EmbedLLM's layout, a built-in data set by name, a
wide table or JSON records converted on the fly, or synthetic data.

A source spec is a folder path; a built-in name (``mmlu-pro``); a ``.csv``/``.parquet`` wide
table or ``.json``/``.jsonl`` records (see ``convert.py``); or ``synthetic`` optionally with
settings: ``synthetic:n_questions=2000,n_models=20,dim=64,seed=1``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.data.builtin import BUILTIN, load_builtin
from search.data.convert import RECORD_SUFFIXES, TABLE_SUFFIXES, Parsed, assemble, parse_records, parse_wide
from search.data.data_options import DataOptions
from search.data.embedding import embeddings_for
from search.data.embedllm import load_folder
from search.data.leakage import deduped
from search.data.parts import load_parts, parts_of
from search.data.router_data import RouterData
from search.data.scores import apply_rules, parse_rules
from search.data.synthetic import SyntheticSpec, make_synthetic
from search.data.tasks_file import attach_tasks
from search.errors import DataError

MANY_TASKS = 50  # tasks beyond this and half the questions: said, a task column may be an id


def load_data(
    spec: str | Path | Mapping[str, Sequence[str]] | None, options: DataOptions | None = None, **given: Any
) -> RouterData:
    """Load router data from a source spec (see module doc); None means default synthetic; a
    mapping (or its string form, ``train=a.json;test=b.json``) gives files per split
    (``parts.py``).

    ``options`` (or the same as keywords: embeddings, align, threshold, id_column, seed,
    encoder, template) say how to read a table or records and where the embeddings come from
    (``embedding.py``).
    """
    options = (options or DataOptions()).merged(**given)
    return prepared(_load(spec, options), options)


def prepared(data: RouterData, options: DataOptions) -> RouterData:
    """``data`` as the options say it counts: its tasks from a tasks file (``tasks_file.py``),
    each task's metric rule applied to its scores (``scores.py``), and with ``dedupe`` the val
    and test questions that repeat an earlier split's dropped (``leakage.py``)."""
    if options.tasks is not None:
        data = attach_tasks(data, options.tasks, options)
    if options.metric_rule is not None:
        data.Y = apply_rules(
            data.Y, data.mask, parse_rules(options.metric_rule), data.tasks, data.task_names, data.source
        )
    if options.dedupe:
        data = deduped(data)
    n, tasks = len(data.X), len(data.task_names or ())
    if tasks > max(MANY_TASKS, n // 2):
        data.notes.append(
            f"warning: {tasks:,} tasks for {n:,} questions: nearly one per question, so a task says "
            "little (is the task column an id? see --task-column)"
        )
    return data


def _load(spec: str | Path | Mapping[str, Sequence[str]] | None, options: DataOptions) -> RouterData:
    if isinstance(spec, Mapping):
        return load_parts(spec, options)
    if spec is not None and (parts := parts_of(str(spec))) is not None:
        return load_parts(parts, options)
    if spec is None or str(spec) == "synthetic" or str(spec).startswith("synthetic:"):
        return load_synthetic(parse_synthetic_spec(str(spec or "synthetic")))
    if str(spec) in BUILTIN:
        return load_builtin(str(spec), options)
    path = Path(spec)
    if path.suffix.lower() in TABLE_SUFFIXES and path.is_file():
        return load_wide(path, options)
    if path.suffix.lower() in RECORD_SUFFIXES and path.is_file():
        return load_records(path, options)
    return load_folder(path, options)


def load_wide(path: Path, options: DataOptions | None = None, **given: Any) -> RouterData:
    """A wide table (``convert.py``) as RouterData."""
    options = (options or DataOptions()).merged(**given)
    return _embedded(parse_wide(path, options), options)


def load_records(path: Path, options: DataOptions | None = None, **given: Any) -> RouterData:
    """JSON or JSONL records (``convert.py``) as RouterData."""
    options = (options or DataOptions()).merged(**given)
    return _embedded(parse_records(path, options), options)


def _embedded(parsed: Parsed, options: DataOptions) -> RouterData:
    X, encoder = embeddings_for(
        str(parsed.source),
        parsed.n,
        options,
        texts=parsed.texts,
        template=parsed.template,
        texts_error=parsed.texts_error,
        ids=parsed.ids,
    )
    return assemble(parsed, X, parsed.splits(options.seed), encoder=encoder)


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
        except ValueError as exc:
            raise DataError(f"data {spec!r}: {key}={value!r} is not a number") from exc
    return synthetic_spec(kwargs, where=f"data {spec!r}")


def synthetic_spec(options: dict[str, Any], where: str) -> SyntheticSpec:
    try:
        return SyntheticSpec(**options)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: {exc}") from exc


def load_synthetic(spec: SyntheticSpec) -> RouterData:
    X, Y, mask, names, splits = make_synthetic(spec)
    return RouterData(X, Y, mask, names, splits, source=spec.source())
