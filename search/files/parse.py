"""Untrusted text into bounded Python objects: YAML and JSON as every command reads them.

Each reader refuses, in one line naming the file and what is valid, what would otherwise make
work or memory grow without bound or end in a traceback:

- text that is not UTF-8 (the byte and its offset);
- duplicate keys in a mapping (YAML and JSON alike: the last one would win without a word);
- nesting deeper than ``MAX_DEPTH`` (Python's parsers recurse, so a deep document is a
  RecursionError otherwise);
- a YAML document whose aliases expand to more than ``MAX_VALUES`` values (a "billion laughs"
  document is 600 bytes and would expand to billions): counted on the shared nodes without
  expanding them, so the refusal takes milliseconds;
- a file larger than the caller's ``max_bytes``.

ParseError is a UserError: the command line prints it as one line and exits 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from search.errors import UserError, first_line

MAX_DEPTH = 100  # nested mappings/lists; a space or config needs fewer than 10
MAX_VALUES = 100_000  # values after alias expansion; a large space has a few hundred
MAX_SPACE_BYTES = 1 << 20  # a space or config file: 1 MiB


class ParseError(UserError):
    """A document that cannot be read; the message is one line (file, place, what is valid)."""


def read_text(path: str | os.PathLike[str], what: str = "file", max_bytes: int | None = None) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark is dropped).

    Raises:
        ParseError: Missing, unreadable, larger than ``max_bytes``, or not UTF-8.
    """
    path = Path(path)
    try:
        if max_bytes is not None and path.stat().st_size > max_bytes:
            raise ParseError(
                f"{path}: {path.stat().st_size:,} bytes; a {what} may be at most {max_bytes:,} bytes"
            )
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ParseError(f"{path}: file not found") from exc
    except IsADirectoryError as exc:
        raise ParseError(f"{path}: is a folder; give a {what}") from exc
    except OSError as exc:
        raise ParseError(f"{path}: not readable ({exc.strerror})") from exc
    return decode_utf8(raw, str(path))


def decode_utf8(raw: bytes, where: str) -> str:
    """``raw`` as UTF-8 text; any other encoding is one line naming the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParseError(
            f"{where} line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from exc


# -- YAML ----------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys and bounds merge-key expansion."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # The mapping's own keys, before merge keys bring in others (which its own override).
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        # Merge keys (<<: *a) copy the merged pairs into this mapping: bounded like aliases.
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"merge keys expand to more than {MAX_VALUES:,} keys", node.start_mark
            )


def check_bounded(obj: Any, where: str) -> None:
    """Refuse ``obj`` when it nests deeper than MAX_DEPTH or expands to more than MAX_VALUES
    values. Shared sub-objects (YAML aliases) are counted once per use, as a reader would see
    them, but visited once: the count costs time in the number of distinct objects."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    # Iterative post-order walk: no recursion, whatever the depth.
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        key = id(node)
        if key in sizes:
            continue
        children = [c for c in (node.values() if isinstance(node, dict) else node)]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if isinstance(c, (dict, list)))
            if len(stack) > MAX_VALUES:
                raise ParseError(f"{where}: more than {MAX_VALUES:,} values; too large to be a space")
            continue
        size = len(node) + (len(node) if isinstance(node, dict) else 0)
        depth = 1
        for c in children:
            if isinstance(c, (dict, list)):
                size += sizes.get(id(c), 0)
                depth = max(depth, 1 + depths.get(id(c), 0))
        if size > MAX_VALUES:
            raise ParseError(
                f"{where}: expands to more than {MAX_VALUES:,} values (anchors and aliases "
                "repeated inside each other?); a space is at most that large"
            )
        if depth > MAX_DEPTH:
            raise ParseError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        sizes[key], depths[key] = size, depth


def _bracket_depth(text: str) -> int:
    """The deepest nesting of ``[`` and ``{`` in ``text`` (quotes and comments not told apart:
    an upper bound), in C speed: YAML's own scanner would take seconds on a deep document
    before its parser ran out of stack."""
    codes = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    steps = np.zeros(codes.shape, dtype=np.int32)
    steps[(codes == ord("[")) | (codes == ord("{"))] = 1
    steps[(codes == ord("]")) | (codes == ord("}"))] = -1
    return int(np.cumsum(steps).max(initial=0))


def load_yaml(text: str, where: str) -> Any:
    """One YAML document (safe types only), bounded as the module doc says.

    Raises:
        ParseError: On a syntax error (with its line), a duplicate key, or a document too deep
            or too large.
    """
    if _bracket_depth(text) > MAX_DEPTH:
        raise ParseError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    try:
        obj = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        kind = "YAML syntax error: " if not isinstance(exc, yaml.constructor.ConstructorError) else ""
        raise ParseError(f"{where}{line}: {kind}{problem}") from exc
    except RecursionError as exc:
        raise ParseError(f"{where}: nested more than {MAX_DEPTH} levels deep") from exc
    check_bounded(obj, where)
    return obj


# -- JSON ----------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Duplicate(key)
        out[key] = value
    return out


class _Duplicate(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def load_json(text: str, where: str, first_line: int = 1) -> Any:
    """One JSON document: duplicate keys and nesting deeper than MAX_DEPTH are errors, each one
    line. (NaN and Infinity are read as floats: the readers check every number they use.)
    ``first_line`` numbers the text's lines from there (a line of a JSONL file).

    Raises:
        ParseError: As above, or on a syntax error.
    """
    try:
        obj = json.loads(text, object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise ParseError(f"{where} line {line}: not valid JSON ({exc.msg})") from exc
    except _Duplicate as exc:
        raise ParseError(f"{where}: duplicate key {exc.key!r} in an object") from exc
    except RecursionError as exc:
        raise ParseError(f"{where}: nested more than {MAX_DEPTH} levels deep") from exc
    if _deep(obj):
        raise ParseError(f"{where}: nested more than {MAX_DEPTH} levels deep")
    return obj


def _deep(obj: Any) -> bool:
    """Whether ``obj`` nests more than MAX_DEPTH levels (JSON has no aliases: only depth)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))
    return False


def read_json(path: str | os.PathLike[str], what: str = "JSON file", max_bytes: int | None = None) -> Any:
    """``load_json`` of a file, read as UTF-8."""
    return load_json(read_text(path, what, max_bytes), str(path))
