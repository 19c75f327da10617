"""Scores: what a (question, LLM) number means, and the rules that turn it into the quantity a
router aims at and is measured on. Defined once here; every loader and the data options use it.

A score is 0/1 correctness or a grade in [0, 1] (the probability of the right option, the share
of passing samples, a coverage). Grades are kept: a router trains on them as soft targets (BCE
with the grade as the target) and routing is measured as the mean score of the chosen LLM,
which for 0/1 data is routing accuracy. ``--threshold T`` turns any number into 0/1 (score >= T
is 1) before anything else.

A metric rule says how a benchmark counts a task, where it mixes rules:

- ``mean``: the grade as it is (the default);
- ``positive``: a score above 0 counts as 1, else 0;
- a number T: a score >= T counts as 1, else 0.

One rule for all (``positive``), one per task (``mmlu=positive,gsm8k=mean``), or both (a bare
rule is the default for the tasks not named). In a space: ``metric_rule: positive`` or
``metric_rule: {mmlu: positive, gsm8k: mean}``. The rule is applied to the scores at load, so
the router trains on what it is measured on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from search.errors import DataError

RULES = ("mean", "positive")
OUT_OF_RANGE = (
    "is not a score in [0, 1] (0/1 correctness or a grade); give --threshold T to count score >= T as correct"
)

Rule = str | float  # "mean", "positive" or a threshold


def check_scores(y: np.ndarray, where: Any) -> None:
    """Raise a DataError naming the first observed score outside [0, 1]; ``where(i)`` says where
    flat index ``i`` of ``y`` is (NaN cells are unobserved and pass)."""
    bad = np.flatnonzero(~np.isnan(y) & ((y < 0) | (y > 1)))
    if bad.size:
        raise DataError(f"{where(int(bad[0]))} {y.flat[bad[0]]:g} {OUT_OF_RANGE}")


def thresholded(y: np.ndarray, threshold: float | None) -> np.ndarray:
    """Scores >= threshold as 1, others 0, NaN (unobserved) kept; ``y`` as is without one."""
    if threshold is None:
        return y
    return np.where(np.isnan(y), np.nan, (y >= threshold).astype(np.float64))


def _rule(value: Any, where: str) -> Rule:
    if isinstance(value, str) and value.strip() in RULES:
        return value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise DataError(f"metric_rule {where}{value!r}: valid: mean, positive, or a threshold (a number)")
    return number


def parse_rules(spec: str | Mapping[str, Any] | float | None) -> dict[str, Rule]:
    """A metric rule spec as ``{task: rule}``; the key ``""`` holds the default rule.

    Raises:
        DataError: An unknown rule, or a task (or the default) named twice. A rule with no
            task (``positive``, ``=positive``) is the default.
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = [(str(k), v) for k, v in spec.items()]
    elif isinstance(spec, (int, float)) and not isinstance(spec, bool):
        items = [("", spec)]
    elif isinstance(spec, str):
        items = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            task, eq, rule = part.rpartition("=")
            items.append((task.strip(), rule) if eq else ("", part))
    else:
        raise DataError(f"metric_rule {spec!r}: give a rule, or an object of task: rule")
    rules: dict[str, Rule] = {}
    for task, value in items:
        if task in rules:
            raise DataError(f"metric_rule: {'task ' + repr(task) if task else 'the default'} is given twice")
        rules[task] = _rule(value, f"{task}=" if task else "")
    return rules


def rule_text(rules: Mapping[str, Rule]) -> str | None:
    """The canonical text of parsed rules (recorded with the data options), None for none."""
    if not rules:
        return None

    def one(r: Rule) -> str:
        return r if isinstance(r, str) else f"{r:g}"

    return ",".join((f"{t}={one(r)}" if t else one(r)) for t, r in sorted(rules.items()))


def apply_rules(
    y: np.ndarray,
    mask: np.ndarray,
    rules: Mapping[str, Rule],
    tasks: np.ndarray | None,
    task_names: Sequence[str] | None,
    source: str,
) -> np.ndarray:
    """``y`` [Q, M] with each question's rule applied to its observed scores (a copy).

    Raises:
        DataError: A rule names a task the data does not have (or the data has no tasks).
    """
    named = [t for t in rules if t]
    if named and (tasks is None or not task_names):
        raise DataError(
            f"metric_rule names task {named[0]!r} but data {source} has no tasks (a task or category "
            "column or field, or files per task)"
        )
    unknown = [t for t in named if t not in (task_names or [])]
    if unknown:
        raise DataError(
            f"metric_rule: data {source} has no task {unknown[0]!r}; its tasks: {', '.join(task_names or [])}"
        )
    out = y.astype(np.float32, copy=True)
    default = rules.get("", "mean")
    if tasks is None or not task_names:
        out = _applied(out, default)
    else:
        for t, name in enumerate(task_names):
            rows = np.asarray(tasks) == t
            out[rows] = _applied(out[rows], rules.get(name, default))
    return np.where(mask, out, 0.0).astype(np.float32)


def _applied(y: np.ndarray, rule: Rule) -> np.ndarray:
    if rule == "mean":
        return y
    if rule == "positive":
        return (y > 0).astype(np.float32)
    return (y >= float(rule)).astype(np.float32)


def is_graded(y: np.ndarray, mask: np.ndarray) -> bool:
    """Whether any observed score is strictly between 0 and 1."""
    observed = y[mask]
    return bool(((observed > 0) & (observed < 1)).any())
