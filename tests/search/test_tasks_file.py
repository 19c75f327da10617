"""``--tasks FILE``: tasks joined from a side file by id or by exact question text, the
unmatched counted in one line, and every way the file can be wrong as one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from search.cli.main import main
from search.data import load_data
from search.data.tasks_file import NO_TASK
from search.errors import DataError


def _records(tmp_path: Path, n: int = 60) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.jsonl"
    with path.open("w") as f:
        for i in range(n):
            scores = {"x": int(rng.random() > 0.4), "y": int(rng.random() > 0.6)}
            f.write(json.dumps({"id": i, "question": f"question number {i}", "scores": scores}) + "\n")
    np.save(tmp_path / "e.npy", rng.normal(size=(n, 4)).astype(np.float32))
    return path


def _lines(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_tasks_join_by_exact_text_and_unmatched_are_counted(tmp_path: Path) -> None:
    data_path = _records(tmp_path)
    tasks = _lines(
        tmp_path / "tasks.jsonl",
        [{"query": f"question number {i}", "task": "math" if i % 2 else "poems"} for i in range(50)]
        + [{"query": "not in the data", "task": "math"}],
    )
    data = load_data(str(data_path), embeddings=str(tmp_path / "e.npy"), tasks=str(tasks))
    assert data.task_names == [NO_TASK, "math", "poems"]
    names = [data.task_names[t] for t in data.tasks]
    assert names[:4] == ["poems", "math", "poems", "math"] and names[50:] == [NO_TASK] * 10
    assert data.notes == [
        f"--tasks {tasks}: 50 of 60 questions matched a task by query (2 tasks); 10 matched none and take "
        f"the task '{NO_TASK}'"
    ]


def test_tasks_join_by_id_from_a_table(tmp_path: Path) -> None:
    data_path = _records(tmp_path)
    table = tmp_path / "tasks.csv"
    table.write_text("question_id,category\n" + "".join(f"{i},{'a' if i < 30 else 'b'}\n" for i in range(60)))
    data = load_data(
        str(data_path), embeddings=str(tmp_path / "e.npy"), align="id", id_column="id", tasks=str(table)
    )
    assert data.task_names == ["a", "b"] and data.tasks.tolist() == [0] * 30 + [1] * 30
    assert data.notes == [f"--tasks {table}: 60 of 60 questions matched a task by question_id (2 tasks)"]


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ("", "t.txt", "give a .csv, .parquet, .jsonl, .json file"),
        (None, "missing.jsonl", "file not found"),
        ('{"query": "question number 1"}\n', "t.jsonl", "no task or category field (has query)"),
        ('{"task": "a", "label": 3}\n', "t.jsonl", "nothing to join on"),
        (
            '{"query": "question number 1", "task": "a"}\n{"query": "question number 1", "task": "b"}\n',
            "t.jsonl",
            "row 1: query 'question number 1' has two tasks ('a', 'b')",
        ),
        ('{"query": "elsewhere", "task": "a"}\n', "t.jsonl", "no question matched by query"),
        ('{"query": "question number 1", "task": [1]}\n', "t.jsonl", "row 0: task [1] is not a name"),
        ("[1, 2]", "t.json", "every row must be a record"),
        ('{"query": ', "t.jsonl", "t.jsonl"),
    ],
)
def test_bad_tasks_files_are_one_line(tmp_path: Path, content, name, message) -> None:
    data_path = _records(tmp_path)
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=re.escape(message)):
        load_data(str(data_path), embeddings=str(tmp_path / "e.npy"), tasks=str(path))


def test_data_describe_says_how_the_tasks_file_matched(tmp_path: Path, capsys) -> None:
    data_path = _records(tmp_path)
    tasks = _lines(
        tmp_path / "t.jsonl", [{"question": f"question number {i}", "task": "t"} for i in range(60)]
    )
    rc = main(
        ["data", "describe", str(data_path), "--embeddings", str(tmp_path / "e.npy"), "--tasks", str(tasks)]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "60 of 60 questions matched a task by question (1 tasks)" in out
    rc = main(
        [
            "data",
            "describe",
            str(data_path),
            "--embeddings",
            str(tmp_path / "e.npy"),
            "--tasks",
            str(tmp_path / "no.csv"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "file not found" in err
