"""Questions shared between splits: a test question that also sits in train measures memory, not
routing. ``data describe`` and every run report them; ``--dedupe`` drops them from val and test.

A val or test question leaks when an earlier split (train before val before test) holds the
same question: the same text (after trimming and collapsing whitespace) where the data has
texts, else an identical embedding; or a near-duplicate, whose embedding's cosine similarity
with an earlier split's is at least ``NEAR_COSINE``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.data.router_data import SPLITS, RouterData
from search.errors import DataError

NEAR_COSINE = 0.98  # stated in the README; paraphrases and reformatted copies sit above it
_CHUNK = 2048


@dataclass
class Leakage:
    """Per later split and earlier split: how many of the later split's questions repeat one of
    the earlier split's, exactly and near (near counts exclude exact ones), overall and per task.

    Attributes:
        basis: ``text`` or ``embedding``: what "the same question" compared.
        pairs: ``{"split": "test", "earlier": "train", "exact": n, "near": n, "questions": n,
            "tasks": {task: {"exact": n, "near": n}}}`` per pair with a split of questions.
        leaked: per later split, the question indices that repeat an earlier split's.
    """

    basis: str
    pairs: list[dict[str, Any]] = field(default_factory=list)
    leaked: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(int(v.size) for v in self.leaked.values())

    def line(self) -> str | None:
        """One line for a run's output, or None when nothing leaks."""
        if not self.total:
            return None
        parts = [
            f"{p['exact'] + p['near']} of {p['questions']} {p['split']} questions in {p['earlier']} "
            f"({p['exact']} same {self.basis}, {p['near']} near)"
            for p in self.pairs
            if p["exact"] + p["near"]
        ]
        return "leakage: " + "; ".join(parts) + " (--dedupe drops them from val and test)"

    def lines(self) -> list[str]:
        """The counts as text lines (``data describe``)."""
        out = [f"questions in more than one split (same {self.basis}; near: cosine >= {NEAR_COSINE}):"]
        for p in self.pairs:
            tasks = [f"{t} {c['exact']}+{c['near']}" for t, c in p["tasks"].items() if c["exact"] + c["near"]]
            by_task = f"; by task (exact+near): {', '.join(tasks)}" if tasks else ""
            out.append(
                f"  {p['split']} in {p['earlier']}: {p['exact']} exact, {p['near']} near, of "
                f"{p['questions']}{by_task}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"basis": self.basis, "near_cosine": NEAR_COSINE, "pairs": self.pairs}


def _norm_text(t: str) -> str:
    return re.sub(r"\s+", " ", t).strip()


def _keys(data: RouterData, rows: np.ndarray) -> list[Any]:
    """What makes two of ``rows`` the same question: the text, else the embedding's bytes."""
    if data.texts is not None:
        return [_norm_text(data.texts[i]) for i in rows.tolist()]
    X = np.ascontiguousarray(data.X)
    return [X[i].tobytes() for i in rows.tolist()]


def _exact(keys: dict[str, list[Any]], later: str, earlier: str) -> np.ndarray:
    """Which questions of split ``later`` repeat one of split ``earlier`` exactly."""
    seen = set(keys[earlier])
    return np.asarray([k in seen for k in keys[later]], dtype=bool)


def _unit(X: np.ndarray) -> np.ndarray:
    X = X.astype(np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def _near(U: np.ndarray, later: np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """Which of ``later`` have an ``earlier`` question at cosine >= NEAR_COSINE (``U``: the unit
    embeddings)."""
    E = U[earlier]
    out = np.zeros(later.size, dtype=bool)
    for start in range(0, later.size, _CHUNK):
        block = U[later[start : start + _CHUNK]] @ E.T
        out[start : start + _CHUNK] = block.max(axis=1) >= NEAR_COSINE
    return out


def find_leakage(data: RouterData) -> Leakage:
    """Questions of val and test that repeat one of an earlier split (see the module doc)."""
    report = Leakage("text" if data.texts is not None else "embedding")
    keys = {s: _keys(data, data.splits[s]) for s in SPLITS}  # each text normalized once
    U = _unit(data.X)
    for k, split in enumerate(SPLITS[1:], start=1):
        later = data.splits[split]
        hit = np.zeros(later.size, dtype=bool)
        for earlier_split in SPLITS[:k]:
            earlier = data.splits[earlier_split]
            if not later.size or not earlier.size:
                continue
            exact = _exact(keys, split, earlier_split)
            near = _near(U, later, earlier) & ~exact
            tasks: dict[str, dict[str, int]] = {}
            if data.tasks is not None and data.task_names:
                for t, name in enumerate(data.task_names):
                    in_task = data.tasks[later] == t
                    if in_task.any():
                        tasks[name] = {
                            "exact": int((exact & in_task).sum()),
                            "near": int((near & in_task).sum()),
                        }
            report.pairs.append(
                {
                    "split": split,
                    "earlier": earlier_split,
                    "questions": int(later.size),
                    "exact": int(exact.sum()),
                    "near": int(near.sum()),
                    "tasks": tasks,
                }
            )
            hit |= exact | near
        report.leaked[split] = later[hit]
    return report


def deduped(data: RouterData) -> RouterData:
    """``data`` without the val and test questions that repeat an earlier split's.

    Raises:
        DataError: Nothing would be left of val or test.
    """
    leak = find_leakage(data)
    splits = dict(data.splits)
    for split, drop in leak.leaked.items():
        kept = np.setdiff1d(splits[split], drop)
        if kept.size == 0:
            raise DataError(
                f"data {data.source}: --dedupe would leave no {split} questions (all "
                f"{splits[split].size:,} repeat an earlier split)"
            )
        splits[split] = kept
    return dataclasses.replace(data, splits=splits)
