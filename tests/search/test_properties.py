"""Property-based tests of every parser: random spaces, records, tables, journals, configs and
router files either load or raise the project's one-line error, never another exception, and
never take a second. Hypothesis shrinks a failing input to its smallest form.

Derandomized (the same examples on every machine and run), so a failure is a bug to fix, not
noise. To search harder: ``RS_PROPERTY_EXAMPLES=2000 RS_PROPERTY_RANDOM=1 pytest ...``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_models import ConfigError, create_model, load_router, save_router
from search.data.sources import load_records, load_synthetic, load_wide
from search.data.synthetic import SyntheticSpec
from search.errors import UserError
from search.space import load_space, parse_space
from search.study.journal import check_journal
from search.study.store import open_study
from search.trial.config import build_model
from search.trial.train_config import resolve_train_config
from tests.search.spaces import tiny_space

SETTINGS = settings(
    max_examples=int(os.environ.get("RS_PROPERTY_EXAMPLES", "150")),
    deadline=None,  # timed below, per input, against the 1 s bound
    derandomize=not os.environ.get("RS_PROPERTY_RANDOM"),
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LIMIT_S = 1.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["mlp", "mf", "residual_mlp", "relu", "auto", "tpe", "median", "val_auc", "choices"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def _one_line_or_value(fn, *errors: type[BaseException]) -> Any:
    start = time.monotonic()
    try:
        out = fn()
    except errors as exc:
        message = str(exc)
        assert message and "\n" not in message, repr(message)
        out = exc
    assert time.monotonic() - start < LIMIT_S
    return out


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested dict/list."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_spaces(draw) -> dict[str, Any]:
    """A valid space with a few values replaced by anything: near the valid ones, where the
    checks are."""
    space = copy.deepcopy(tiny_space())
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(space) if p]
        path = draw(st.sampled_from(paths))
        node = space
        for key in path[:-1]:
            node = node[key]
        if draw(st.booleans()) and isinstance(node, dict):
            node[draw(st.text(max_size=8))] = draw(values)  # a new key
        else:
            node[path[-1]] = draw(values)
    return space


@SETTINGS
@given(space=mutated_spaces())
def test_mutated_spaces_load_or_say_what_is_wrong(space: dict[str, Any]) -> None:
    _one_line_or_value(lambda: parse_space(space), UserError)


@SETTINGS
@given(doc=values)
def test_any_document_as_a_space(doc: Any) -> None:
    _one_line_or_value(lambda: parse_space(doc), UserError)


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("ab:- &*[]{},\n#!'\"<>|@%0.9")), max_size=80))
def test_any_yaml_text_as_a_space_file(text: str, tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    _one_line_or_value(lambda: load_space(path), UserError)


@SETTINGS
@given(space=mutated_spaces())
def test_mutated_spaces_as_yaml_files(space: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    try:
        path.write_text(yaml.safe_dump(space, allow_unicode=True))
    except (yaml.YAMLError, UnicodeEncodeError):
        return  # not writable as YAML: not an input a user could give
    _one_line_or_value(lambda: load_space(path), UserError)


record = st.fixed_dictionaries(
    {"scores": st.one_of(st.dictionaries(st.sampled_from(["a", "b", "c"]), scalars, max_size=3), values)},
    optional={
        "split": st.one_of(st.sampled_from(["train", "val", "test", "dev"]), scalars),
        "costs": st.one_of(st.dictionaries(st.sampled_from(["a", "b", "x"]), scalars, max_size=3), values),
        "id": scalars,
    },
)


@SETTINGS
@given(records=st.one_of(st.lists(record, max_size=12), values), threshold=st.none() | st.floats(0, 1))
def test_random_records_load_or_say_what_is_wrong(
    records: Any, threshold: float | None, tmp_path: Path
) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    n = len(records) if isinstance(records, list) else 1
    np.save(tmp_path / "e.npy", np.ones((max(n, 1), 3), dtype=np.float32))
    _one_line_or_value(
        lambda: load_records(path, embeddings=tmp_path / "e.npy", threshold=threshold), UserError
    )


cells = st.one_of(
    st.sampled_from(["0", "1", "", "0.5", "-1", "nan", "inf", "x", '"a,b"', "train", "val", "test"]),
    st.text(alphabet='01.,-"x', max_size=4),
)


@SETTINGS
@given(
    header=st.lists(
        st.sampled_from(["a", "b", "c", "id", "split", "a|total_cost", "b|total_cost", "a"]),
        min_size=1,
        max_size=5,
    ),
    rows=st.lists(st.lists(cells, min_size=1, max_size=6), max_size=10),
)
def test_random_wide_tables_load_or_say_what_is_wrong(
    header: list[str], rows: list[list[str]], tmp_path: Path
) -> None:
    path = tmp_path / "w.csv"
    path.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n")
    np.save(tmp_path / "e.npy", np.ones((max(len(rows), 1), 3), dtype=np.float32))
    _one_line_or_value(lambda: load_wide(path, embeddings=tmp_path / "e.npy"), UserError)


@pytest.fixture(scope="module")
def journal_lines(tmp_path_factory) -> list[bytes]:
    """The lines of a real journal: a study with two trials."""
    run = tmp_path_factory.mktemp("journal")
    space = parse_space(tiny_space())
    study = open_study(run, space)
    for value in (0.6, 0.7):
        trial = study.ask()
        space.suggest(trial)
        trial.report(value, 1)
        study.tell(trial, value)
    return (run / "study.journal").read_bytes().splitlines(keepends=True)


@SETTINGS
@given(data=st.data())
def test_damaged_journals_are_read_or_said_in_one_line(
    data, journal_lines: list[bytes], tmp_path: Path
) -> None:
    lines = list(journal_lines)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        kind = data.draw(st.sampled_from(["drop", "cut", "garbage", "json", "swap"]))
        if kind == "drop":
            lines.pop(i)
        elif kind == "cut":
            lines[i] = lines[i][: data.draw(st.integers(0, len(lines[i])))]
        elif kind == "garbage":
            lines[i] = data.draw(st.binary(max_size=30)) + b"\n"
        elif kind == "json":
            lines[i] = json.dumps(data.draw(values)).encode() + b"\n"
        else:
            j = data.draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            break
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "study.journal").write_bytes(b"".join(lines))
    check_journal(run / "study.journal")  # never raises: every line is intact or said damaged
    _one_line_or_value(lambda: open_study(run, parse_space(tiny_space()), write=False), UserError)


DATA = load_synthetic(SyntheticSpec(n_questions=60, n_models=3, dim=4))


@SETTINGS
@given(
    model_type=st.sampled_from(["mlp", "mf", "residual_mlp", "ensemble", "template", "nope"]),
    model_config=st.one_of(
        st.dictionaries(
            st.sampled_from(
                ["hidden_dims", "dropout", "activation", "num_blocks", "noise_std", "members", "x"]
            ),
            values,
            max_size=4,
        ),
        values,
    ),
    train_config=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["lr", "weight_decay", "batch_size", "epochs", "y"]), scalars, max_size=3
        ),
    ),
)
def test_random_configs_build_or_say_what_is_wrong(
    model_type: str, model_config: Any, train_config: Any
) -> None:
    config = {"pipeline_config": {"model_type": model_type, "model_config": model_config}}
    if train_config is not None:
        config["pipeline_config"]["train_config"] = train_config

    def build() -> None:
        resolve_train_config(config)
        build_model(config, DATA, meta=True)

    _one_line_or_value(build, ConfigError)


@pytest.fixture(scope="module")
def router_payload(tmp_path_factory) -> dict[str, Any]:
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [8]}}, 4, 3)
    path = tmp_path_factory.mktemp("router") / "r.pt"
    save_router(model, path, model_names=["a", "b", "c"], routing={"offsets": [0.0, 0.1, 0.0]})
    return torch.load(path, weights_only=True)


tensors = st.builds(
    lambda shape: torch.zeros(shape), st.lists(st.integers(0, 9), min_size=0, max_size=3).map(tuple)
)


@SETTINGS
@given(data=st.data())
def test_damaged_router_files_load_or_say_what_is_wrong(data, router_payload: dict[str, Any]) -> None:
    payload = copy.deepcopy(router_payload)
    for _ in range(data.draw(st.integers(1, 3))):
        key = data.draw(
            st.sampled_from(
                [
                    "config",
                    "embedding_dim",
                    "num_models",
                    "model_names",
                    "routing",
                    "state_dict",
                    "metadata",
                    "dims",
                ]
            )
        )
        if key == "state_dict":
            name = data.draw(st.sampled_from([*payload["state_dict"], "extra"]))
            payload["state_dict"][name] = data.draw(tensors)
        elif key == "dims":
            dims = data.draw(st.lists(st.integers(-2, 40_000), max_size=3))
            try:
                payload["config"]["pipeline_config"]["model_config"]["hidden_dims"] = dims
            except (KeyError, TypeError):
                pass  # the config was replaced already
        else:
            payload[key] = data.draw(values)
    buf = io.BytesIO()
    torch.save(payload, buf)
    out = _one_line_or_value(lambda: load_router(io.BytesIO(buf.getvalue())), ConfigError)
    if not isinstance(out, ConfigError):
        model, info = out
        assert len(info["offsets"]) == model.output_dim and all(math.isfinite(v) for v in info["offsets"])
