"""The Python API's arguments checked by type and range before anything starts or is written:
a wrong one is the ``UserError`` the README promises (one line naming the argument, what it
must be and what it got), never a TypeError from deep inside, nor a half-made run dir.

>>> check("search.run", num_samples=(2.0, COUNT))
Traceback (most recent call last):
...
search.errors.UserError: search.run: num_samples must be a whole number >= 1 (or None), got 2.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from search.errors import UserError

Rule = tuple[Callable[[Any], bool], str]


def _path(v: Any) -> bool:
    return isinstance(v, (str, os.PathLike)) and bool(os.fspath(v))


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def optional(rule: Rule) -> Rule:
    test, what = rule
    return (lambda v: v is None or test(v)), f"{what} (or None)"


PATH: Rule = (_path, "a path (a str or os.PathLike)")
TEXT: Rule = (_text, "a non-empty str")
FLAG: Rule = (lambda v: isinstance(v, bool), "True or False")
COUNT: Rule = optional((_count, "a whole number >= 1"))
NUMBER: Rule = optional((_number, "a finite number"))
SEED: Rule = optional(
    (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a whole number >= 0")
)


def _texts(v: Any) -> bool:
    """A non-empty list (not a str) of non-empty strs."""
    return (
        isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and bool(v) and all(_text(x) for x in v)
    )


DATA: Rule = optional((lambda v: _text(v) or _texts(v), "a source (a str) or a list of them"))
PATHS: Rule = (
    lambda v: isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and all(_path(x) for x in v),
    "a list of paths",
)
NAMES: Rule = (
    lambda v: isinstance(v, Sequence) and not isinstance(v, (str, bytes)) and all(_text(x) for x in v),
    "a list of names",
)
PACK: Rule = optional((lambda v: _count(v) or v == "auto", 'a whole number >= 1 or "auto"'))
RULES: Rule = optional((lambda v: _text(v) or _texts(v), "a rule (a str) or a list of them"))
PICK: Rule = optional(
    (
        lambda v: _text(v) or (isinstance(v, Mapping) and all(_text(k) and _number(w) for k, w in v.items())),
        "a mapping of metric names to weights (or 'metric=weight,...')",
    )
)
ENQUEUE: Rule = (
    lambda v: (
        isinstance(v, Sequence)
        and not isinstance(v, (str, bytes))
        and all(isinstance(p, Mapping) and all(isinstance(k, str) for k in p) for p in v)
    ),
    "a list of dicts of params",
)


def check(caller: str, **given: tuple[Any, Rule]) -> None:
    """Each ``name=(value, rule)`` holds, else UserError naming the first that does not.

    Raises:
        UserError: ``caller: name must be <what>, got <value>``.
    """
    for name, (value, (test, what)) in given.items():
        if not test(value):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise UserError(f"{caller}: {name} must be {what}, got {shown}")
