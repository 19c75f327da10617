"""Damaged run state, oversized models inside a search, a failed export, Ctrl-C outside trials."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from search.__main__ import main
from search.study.journal import check_journal
from tests.search.spaces import tiny_space, write_space

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished run of 4 trials (the journal is copied by each test before damaging it)."""
    tmp = tmp_path_factory.mktemp("finished")
    space = write_space(tmp / "space.yaml", tiny_space(search={"ensemble": {"size": 0}}))
    assert main(["run", str(space), "--out", str(tmp / "run"), "--export", str(tmp / "c.json")]) == 0
    return space, tmp / "run"


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run, dest)
    return dest


def test_a_journal_cut_mid_line_resumes_from_its_intact_records(finished, tmp_path: Path, capsys) -> None:
    space, run = finished
    run = _copy(run, tmp_path / "run")
    journal = run / "study.journal"
    text = journal.read_bytes()
    journal.write_bytes(text + b'{"op_code": 5, "worker_id": "x", "trial_id": 9, "para')  # a crash mid-write
    capsys.readouterr()
    argv = [
        "run",
        str(space),
        "--out",
        str(run),
        "--resume",
        "--num-samples",
        "5",
        "--export",
        str(tmp_path / "c.json"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    lines = text.count(b"\n")
    assert f"skipped 1 damaged record(s) (line {lines + 1}: cut short" in out
    assert "the original is kept as study.journal.damaged" in out
    assert (run / "study.journal.damaged").read_bytes().endswith(b'"para')
    assert not check_journal(journal).damaged  # appended after a clean end
    assert len(pq.read_table(run / "results.parquet")) == 5


def test_a_garbage_line_is_skipped_by_report_and_the_run_dir_is_left_alone(
    finished, tmp_path: Path, capsys
) -> None:
    _, run = finished
    run = _copy(run, tmp_path / "run")
    journal = run / "study.journal"
    journal.write_bytes(journal.read_bytes() + b"\x00\x00 garbage from a full disk\n")
    before = journal.read_bytes()
    assert main(["report", str(run)]) == 0
    assert "skipped 1 damaged record(s)" in capsys.readouterr().out
    assert "- note: " in (run / "report.md").read_text() and "trials: 4" in (run / "report.md").read_text()
    assert journal.read_bytes() == before  # a report changes nothing


def test_a_damaged_record_others_depend_on_stops_with_one_line(finished, tmp_path: Path, capsys) -> None:
    space, run = finished
    run = _copy(run, tmp_path / "run")
    journal = run / "study.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[0] = b"{not json}\n"  # the study's creation: nothing after it can be read
    journal.write_bytes(b"".join(lines))
    before = journal.read_bytes()
    for argv in (["report", str(run)], ["run", str(space), "--out", str(run), "--resume"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert f"{journal} line 1: the study cannot be read without this damaged record" in err
        assert journal.read_bytes() == before and not (run / "study.journal.damaged").exists()


def test_a_model_too_big_fails_its_trial_and_the_search_goes_on(tmp_path: Path) -> None:
    space = tiny_space(
        params={"hidden_dims": {"choices": [[16], [1000000, 1000000]]}}, search={"num_samples": 6, "seed": 3}
    )
    path = write_space(tmp_path / "s.yaml", space)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--export", str(tmp_path / "c.json")]) == 0
    rows = pq.read_table(tmp_path / "run" / "results.parquet").to_pylist()
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert failed and all("needs 14.6 TB to train with AdamW" in r["error"] for r in failed)
    assert all(r["param_hidden_dims"] == "[1000000, 1000000]" for r in failed)
    assert {r["state"] for r in rows} - {"FAIL"} == {"COMPLETE"}


def test_a_failed_export_says_where_the_results_are(tmp_path: Path, monkeypatch, capsys) -> None:
    import search.driver.finish as finish

    export = tmp_path / "c.json"
    export.write_text('{"earlier": 1}\n')
    real = finish.write_json

    def write_json(path, obj):
        if Path(path) == export:
            raise OSError(28, "No space left on device")
        real(path, obj)

    monkeypatch.setattr(finish, "write_json", write_json)
    path = write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 2}))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--export", str(export)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--export {export}: could not write it (No space left on device)" in err
    assert f"the results are in {tmp_path / 'run'}" in err
    assert export.read_text() == '{"earlier": 1}\n'  # the earlier config.json is kept
    assert (
        json.loads((tmp_path / "run" / "config.json").read_text())["search_result"]["trials"]["COMPLETE"] == 2
    )


@pytest.mark.parametrize("phase", ["loading data", "exporting"])
def test_ctrl_c_outside_trials_exits_130_and_keeps_what_was_on_disk(
    tmp_path: Path, monkeypatch, capsys, phase: str
) -> None:
    import search.driver.finish as finish
    import search.driver.rundata as rundata

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(
        rundata if phase == "loading data" else finish,
        "load_data" if phase == "loading data" else "_ensemble",
        interrupt,
    )
    export = tmp_path / "c.json"
    export.write_text('{"earlier": 1}\n')
    path = write_space(tmp_path / "s.yaml", tiny_space(search={"num_samples": 2}))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--export", str(export)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert export.read_text() == '{"earlier": 1}\n'
    if phase == "loading data":
        assert not (tmp_path / "run").exists()  # nothing was written yet
