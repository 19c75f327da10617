"""The JSON files a run leaves, typed: each written by one writer and read back by one reader,
a damaged one a line naming the file and what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from search.errors import UserError
from search.files.rundir import RunDir
from search.results.records import RunInfo, read_run_info
from search.results.run_files import FrontRecord, RoutingRecord, SearchResult


def _result(**extra: object) -> SearchResult:
    return SearchResult(metric="val_auc", mode="max", value=0.75, trial=3, params={"lr": 0.01}, **extra)


def test_a_search_result_reads_back_as_written_and_leaves_out_what_a_run_has_not(tmp_path: Path) -> None:
    result = _result(ensemble={"router": "ensemble_router.pt", "trials": [3, 4], "baselines": ["knn"]})
    block = result.to_dict()
    assert "pareto" not in block and "routing" not in block and block["ensemble"]["trials"] == [3, 4]
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"pipeline_config": {}, "search_result": block}))
    back = SearchResult.read(config)
    assert back == result and back.ensemble_size == 3
    config.write_text(json.dumps({"pipeline_config": {}}))
    assert SearchResult.read(config) is None  # a config written by hand


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([1, 2], "not a run's config.json"),
        (
            {"metric": "val_auc", "mode": "max", "value": 0.7},
            r"search_result lacks what a run writes .*trial",
        ),
        ({"metric": "m", "mode": "max", "value": 0.7, "trial": "3"}, r"search_result.trial is '3'"),
        (
            {"metric": "m", "mode": "max", "value": 0.7, "trial": 3, "ensemble": {"router": "../x.pt"}},
            r"search_result.ensemble.router '../x.pt' is not a file name in the run dir",
        ),
    ],
)
def test_a_damaged_search_result_is_one_line(tmp_path: Path, block: object, message: str) -> None:
    with pytest.raises(UserError, match=message):
        SearchResult.from_dict(block, tmp_path / "config.json")


def test_the_routing_table_and_the_front_read_back_as_written(tmp_path: Path) -> None:
    assert RoutingRecord.read(tmp_path) is None and FrontRecord.read(tmp_path) is None
    record = RoutingRecord([{"router": "knn", "test": 0.7}], recommended="knn", leakage={"val": 0})
    record.write(tmp_path)
    assert RoutingRecord.read(tmp_path) == record
    front = FrontRecord(
        [{"metric": "val_route_acc", "mode": "max"}],
        "the rule",
        {"val_route_acc": 1.0},
        2,
        [{"trial": 2, "values": {"val_route_acc": 0.7}, "router": "pareto/trial_2.pt"}],
    )
    assert front.write(tmp_path)["picked"] == 2 and FrontRecord.read(tmp_path) == front
    RunDir(tmp_path).routing_table.write_text(json.dumps({"rows": [1, 2]}))
    with pytest.raises(UserError, match="rows is not a list of rows"):
        RoutingRecord.read(tmp_path)
    RunDir(tmp_path).pareto.write_text(json.dumps({"rule": "r"}))
    with pytest.raises(UserError, match="not a run's Pareto front"):
        FrontRecord.read(tmp_path)


def test_a_run_record_reads_back_as_written(tmp_path: Path) -> None:
    info = RunInfo(
        space="s.yaml", run_id="r-1", data_source="mmlu-pro", data_options={"seed": 3}, started=1.0
    )
    info.write(tmp_path)
    back = read_run_info(tmp_path)
    assert back == info and back.options().seed == 3
    bad = RunInfo(data_options={"nope": 1})
    with pytest.raises(UserError, match="data_options is not a set of data options"):
        bad.options()
