"""Hostile input, third round: the Python API's arguments, ids beyond int64, folders and split
files that are not what they seem, LLMs no router can learn, tasks as many as questions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import search
from search.data import load_data
from search.data.router_data import no_signal
from search.errors import DataError, UserError
from tests.search.spaces import tiny_space, write_space


@pytest.fixture
def space(tmp_path: Path) -> Path:
    return write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 2, "ensemble": {"size": 0}}))


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"space": None}, "search.run: space must be a path (a str or os.PathLike), got None"),
        ({"out": {}}, "search.run: out must be a path (a str or os.PathLike) (or None), got {}"),
        ({"budget": "cheap"}, "search.run: budget must be a finite number (or None), got 'cheap'"),
        ({"num_samples": "2"}, "search.run: num_samples must be a whole number >= 1 (or None), got '2'"),
        ({"num_samples": 2.0}, "search.run: num_samples must be a whole number >= 1 (or None), got 2.0"),
        ({"num_samples": True}, "search.run: num_samples must be a whole number >= 1 (or None), got True"),
        ({"mlflow": 5}, "search.run: mlflow must be a non-empty str (or None), got 5"),
        ({"pack_size": "many"}, 'search.run: pack_size must be a whole number >= 1 or "auto" (or None)'),
        ({"resume": "yes"}, "search.run: resume must be True or False, got 'yes'"),
        ({"enqueue": [3]}, "search.run: enqueue must be a list of dicts of params, got [3]"),
        ({"pick": {"val_auc": "x"}}, "search.run: pick must be a mapping of metric names to weights"),
        ({"split_seed": -1}, "search.run: split_seed must be a whole number >= 0 (or None), got -1"),
        ({"dedupe": 1}, "search.run: dedupe must be True or False, got 1"),
    ],
)
def test_the_apis_arguments_are_checked_before_anything_is_written(space, tmp_path, given, message) -> None:
    args = {"space": space, "out": tmp_path / "run", "quiet": True, **given}
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UserError) as info:
        search.run(args.pop("space"), **args)
    assert str(info.value).startswith(message), str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run dir, nothing written


def test_other_entry_points_check_their_arguments(tmp_path) -> None:
    with pytest.raises(
        UserError, match=r"Router.load: path must be a path \(a str or os.PathLike\), got 123"
    ):
        search.Router.load(123)
    with pytest.raises(UserError, match="RunResult.load: run_dir must be a path"):
        search.RunResult.load(None)
    with pytest.raises(
        UserError, match="search.train: epochs must be a whole number >= 1 \\(or None\\), got 0"
    ):
        search.train("c.json", epochs=0)
    with pytest.raises(UserError, match="search.train: configs must be a path"):
        search.train([1, 2])


def test_a_run_dir_that_holds_a_run_is_said_in_the_apis_words(space, tmp_path, monkeypatch) -> None:
    from search.files.rundir import RunDir

    run = tmp_path / "run"
    run.mkdir()
    RunDir(run).study.write_text("")  # the marker of a run
    RunDir(run).run_info.write_text("{}")
    with pytest.raises(
        UserError, match="already holds a run: add resume=True to continue it, or pick another out="
    ):
        search.run(space, out=run, quiet=True)


@pytest.mark.slow
def test_a_start_that_fails_before_its_first_trial_leaves_no_run_dir(space, tmp_path, monkeypatch) -> None:
    import search.driver.runner as runner

    def broken(*args, **kwargs):
        raise RuntimeError("the cluster fell over")

    monkeypatch.setattr(runner, "run_trials", broken)
    out = tmp_path / "deep" / "run"
    with pytest.raises(RuntimeError, match="the cluster fell over"):
        search.run(space, out=out, quiet=True)
    assert not out.exists() and not (tmp_path / "deep").exists()  # nothing the same out= refuses


def _embedllm_csvs(folder: Path, big_id: object) -> Path:
    from search.__main__ import main

    main(["data", "convert", "synthetic:n_questions=60,n_models=3,dim=4,seed=1", str(folder)])
    for split in ("train", "val", "test"):
        table = pa.parquet.read_table(folder / f"{split}.parquet")
        pacsv.write_csv(table, folder / f"{split}.csv")
        (folder / f"{split}.parquet").unlink()
    lines = (folder / "train.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[0] = str(big_id)
    lines[1] = ",".join(cells)
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_an_id_beyond_int64_is_one_line_not_a_wrapped_negative(tmp_path, capsys) -> None:
    import pyarrow.parquet  # noqa: F401  (pa.parquet)

    from search.__main__ import main

    folder = _embedllm_csvs(tmp_path / "data", 2**64)
    assert main(["data", "describe", str(folder)]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == f"error: {folder / 'train.csv'} line 2: prompt_id 18446744073709551616 is beyond the integers an id can be (< 2^63)\n"
    )
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"id": 2**64, "question": "q", "scores": {"a": 1, "b": 0}}) + "\n")
    np.save(tmp_path / "e.npy", np.zeros((1, 4), np.float32))
    with pytest.raises(
        DataError,
        match=r"'id' must be an integer row of the embeddings \(< 2\^63\), got 18446744073709551616",
    ):
        load_data(str(records), embeddings=str(tmp_path / "e.npy"), align="id", id_column="id")


def test_a_folder_of_task_files_says_which_layouts_load(tmp_path) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name in ("math", "poems"):
        (folder / f"{name}.json").write_text(json.dumps([{"question": "q", "scores": {"a": 1}}]))
    with pytest.raises(DataError) as info:
        load_data(str(folder))
    message = str(info.value)
    assert "not a data folder in EmbedLLM's layout" in message and "(math.json, poems.json)" in message
    assert f"--data train={folder / 'math.json'}" in message and "\n" not in message


def _records(path: Path, n: int, llms: tuple[str, ...], seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text(
        "".join(
            json.dumps(
                {"question": f"question {seed}-{i}", "scores": {m: int(rng.random() > 0.5) for m in llms}}
            )
            + "\n"
            for i in range(n)
        )
    )
    return path


def test_files_named_after_their_split_name_no_task(tmp_path, monkeypatch) -> None:
    import search.data.parts as parts

    monkeypatch.setattr(
        parts,
        "embeddings_for",
        lambda *a, **k: (np.random.default_rng(0).normal(size=(a[1], 4)).astype(np.float32), None),
    )
    train, test = (
        _records(tmp_path / "train.jsonl", 40, ("a", "b")),
        _records(tmp_path / "test.jsonl", 10, ("a", "b"), 1),
    )
    data = load_data({"train": [str(train)], "test": [str(test)]})
    assert data.tasks is None and data.task_names is None
    math = _records(tmp_path / "math_train.jsonl", 40, ("a", "b"), 2)
    data = load_data({"train": [str(train), str(math)], "test": [str(test)]})
    assert data.task_names == ["(no task)", "math"]


def test_llms_no_router_can_learn_are_one_line() -> None:
    data = load_data("synthetic:n_questions=200,n_models=4,dim=8,seed=1")
    mask = data.mask.copy()
    mask[np.ix_(data.splits["train"], [2, 3])] = False  # c and d only on val and test
    reason = no_signal(dataclasses.replace(data, mask=mask))
    assert (
        reason is not None
        and "2 of 4 LLMs have no score on train ('synthetic-llm-002', 'synthetic-llm-003')" in reason
    )


def test_tasks_almost_as_many_as_questions_are_warned_and_the_table_stays_short() -> None:
    from search.data.data_options import DataOptions
    from search.data.sources import prepared
    from search.results.routing_table import SHOWN_TASKS, routing_table

    base = load_data("synthetic:n_questions=3000,n_models=4,dim=8,seed=1")
    tasks = np.arange(3000, dtype=np.int32)  # an id column taken for tasks
    data = prepared(
        dataclasses.replace(base, tasks=tasks, task_names=[f"t{i}" for i in range(3000)]), DataOptions()
    )
    assert data.notes[-1].startswith("warning: 3,000 tasks for 3,000 questions: nearly one per question")
    table = routing_table([], data)
    assert len(table.tasks) == len(data.splits["test"])  # every test question its own task
    assert f"... {len(table.tasks) - SHOWN_TASKS:,} more tasks" in table.text
