"""Bounded readers of untrusted text: YAML and JSON documents that would hang us, grow memory
without bound, or end in a traceback are refused in one line, fast."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from search.errors import SpaceError, UserError
from search.files.parse import MAX_VALUES, ParseError, load_json, load_yaml, read_json, read_text
from search.space import load_space


def _laughs(levels: int = 9, width: int = 9, mapping: bool = False) -> str:
    """A "billion laughs" document: each level repeats the one before ``width`` times."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        refs = ", ".join(f"*a{i - 1}" for _ in range(width))
        lines.append(
            f"a{i}: &a{i} {{{', '.join(f'k{j}: *a{i - 1}' for j in range(width))}}}"
            if mapping
            else f"a{i}: &a{i} [{refs}]"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mapping", [False, True])
def test_alias_bomb_is_refused_in_well_under_a_second(tmp_path: Path, mapping: bool) -> None:
    text = "model_type: mlp\nparams:\n  hidden_dims: [8]\n  dropout: {choices: *a8}\n"
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_laughs(mapping=mapping) + text)
    assert bomb.stat().st_size < 1200  # 9**9 (387 million) values once expanded
    start = time.monotonic()
    with pytest.raises(SpaceError, match=f"bomb.yaml: expands to more than {MAX_VALUES:,} values"):
        load_space(bomb)
    assert time.monotonic() - start < 0.5


def test_merge_keys_are_bounded_and_may_be_overridden() -> None:
    lines = ["m0: &m0 {k0: 1, k1: 2}"]
    for i in range(1, 40):  # each level merges the one before twice
        lines.append(f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], x{i}: 1}}")
    lines.append("all: [" + ", ".join([f"*m{i}" for i in range(40)] * 200) + "]")
    start = time.monotonic()
    with pytest.raises(ParseError, match="expands to more than"):
        load_yaml("\n".join(lines) + "\n", "merge.yaml")
    assert time.monotonic() - start < 1.0
    # a key of the mapping itself overrides a merged one: not a duplicate
    assert load_yaml("b: &b {lr: 0.1}\nm: {<<: *b, lr: 0.2}\n", "o.yaml")["m"] == {"lr": 0.2}


def test_aliases_within_bounds_still_work() -> None:
    text = "base: &b {lr: 0.1, epochs: 3}\nmodels:\n  mlp: {<<: *b, dropout: 0.2}\n  mf: *b\n"
    loaded = load_yaml(text, "ok.yaml")
    assert loaded["models"]["mlp"] == {"lr": 0.1, "epochs": 3, "dropout": 0.2}
    assert loaded["models"]["mf"] == {"lr": 0.1, "epochs": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\nb: 2\na: 3\n", r"dup.yaml line 3: duplicate key 'a' \(first at line 1\)"),
        (
            "params:\n  lr: 0.1\n  dropout: 0.2\n  lr: 0.3\n",
            r"line 4: duplicate key 'lr' \(first at line 2\)",
        ),
        ("{x: {y: 1, y: 2}}", r"duplicate key 'y'"),
    ],
)
def test_duplicate_yaml_keys_are_errors(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        load_yaml(text, "dup.yaml")


@pytest.mark.parametrize("depth", [150, 200_000])
def test_deep_yaml_is_one_line(depth: int) -> None:
    start = time.monotonic()
    with pytest.raises(ParseError, match=r"deep.yaml: nested more than 100 levels deep"):
        load_yaml("[" * depth + "]" * depth, "deep.yaml")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("depth", [150, 200_000])
def test_deep_json_is_one_line(depth: int) -> None:
    with pytest.raises(ParseError, match=r"r.json: nested more than 100 levels deep"):
        load_json("[" * depth + "]" * depth, "r.json")


def test_duplicate_json_keys_are_errors() -> None:
    with pytest.raises(ParseError, match=r"c.json: duplicate key 'scores' in an object"):
        load_json('{"scores": {"a": 1}, "scores": {"a": 0}}', "c.json")
    assert load_json('{"a": NaN}', "n.json")["a"] != 0  # NaN is read; readers check numbers


def test_jsonl_lines_are_numbered_in_the_file() -> None:
    with pytest.raises(ParseError, match=r"r.jsonl line 7: not valid JSON"):
        load_json("{oops", "r.jsonl", first_line=7)


def test_latin1_text_names_the_byte_and_line(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_bytes("model_type: mlp\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(SpaceError, match=r"space.yaml line 2: not UTF-8 text \(byte 0xe9 at offset 21\)"):
        load_space(path)
    path.write_bytes("\ufeffmodel_type: mlp\nparams: {hidden_dims: [8]}\n".encode())  # a BOM is fine
    assert load_space(path).types == ["mlp"]


def test_size_cap_and_folders(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 2_000_000 + "\n")
    with pytest.raises(SpaceError, match=r"big.yaml: 2,000,003 bytes; a space file may be at most 1,048,576"):
        load_space(big)
    with pytest.raises(ParseError, match="is a folder; give a JSON file"):
        read_json(tmp_path, "JSON file")
    with pytest.raises(ParseError, match="file not found"):
        read_text(tmp_path / "nope.json")
    assert issubclass(ParseError, UserError)  # the command line prints it as one line, exit 2
