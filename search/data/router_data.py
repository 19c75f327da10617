"""RouterData: embeddings, correctness labels, observed pairs, splits, and optional costs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from search.errors import DataError

SPLITS = ("train", "val", "test")
NO_TASK = "(no task)"  # the task of a question no task names, in data where others have one


@dataclass
class RouterData:
    """Router training data over questions x models.

    Attributes:
        X: float32 [num_prompts, d] query embeddings, row = prompt_id.
        Y: float32 [num_prompts, M] correctness in {0, 1} (0 where unobserved).
        mask: bool [num_prompts, M], True where the (question, model) pair was observed.
        model_names: M names, in output order.
        splits: question indices (int64, sorted) for "train", "val" and "test".
        source: where the data came from, for reports.
        cost: float32 [num_prompts, M], what calling that model on that question costs (NaN where
            unknown), or None when the data has no costs.
        texts: each question's text as it was (or would be) embedded, when the source has texts.
        encoder: the identity of the encoder that made X (``EncoderIdentity.to_dict()``), or None
            when X was precomputed by an encoder nobody recorded.
        tasks: int [num_prompts], each question's task (an index into ``task_names``), or None.
        task_names: the tasks' names (a split file's stem, a category), or None.
        ids: int [num_prompts], each question's id in its source (an id column), or None.
        notes: lines about how the data was read, for the user (a tasks file's matches).
    """

    X: np.ndarray
    Y: np.ndarray
    mask: np.ndarray
    model_names: list[str]
    splits: dict[str, np.ndarray]
    source: str = ""
    cost: np.ndarray | None = None
    texts: list[str] | None = None
    encoder: dict[str, Any] | None = None
    tasks: np.ndarray | None = None
    task_names: list[str] | None = None
    ids: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Checks every loader needs: one name per LLM, each once; costs that are costs."""
        names = self.model_names
        where = f"data {self.source}" if self.source else "data"
        if len(names) != self.Y.shape[1]:
            raise DataError(f"{where}: {len(names)} LLM names for {self.Y.shape[1]} score columns")
        seen: set[str] = set()
        for name in names:
            if not isinstance(name, str) or not name:
                raise DataError(f"{where}: LLM name {name!r} is not a non-empty text")
            if name in seen:
                raise DataError(f"{where}: two LLMs are named {name!r}; give each LLM its own name")
            seen.add(name)
        if self.cost is not None and len(self.splits.get("train", ())):
            known = ~np.isnan(self.cost[self.splits["train"]])
            if not known.any():
                raise DataError(
                    f"{where}: every cost is empty; fill the cost columns, or drop them (data without costs)"
                )
            missing = np.flatnonzero(~known.any(axis=0))
            if missing.size:
                raise DataError(
                    f"{where}: LLM {names[int(missing[0])]!r} has no known cost on train (its mean cost "
                    "would read as 0); give its costs, or drop the cost columns"
                )

    @property
    def embedding_dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def num_models(self) -> int:
        return int(self.Y.shape[1])

    @property
    def has_costs(self) -> bool:
        return self.cost is not None

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, Y, mask)`` rows of one split."""
        idx = self.splits[name]
        return self.X[idx], self.Y[idx], self.mask[idx]

    def split_tasks(self, name: str) -> np.ndarray | None:
        """Each question's task in one split (indices into ``task_names``), or None."""
        return None if self.tasks is None else self.tasks[self.splits[name]]

    def single_best(self) -> int:
        """The LLM with the best accuracy on train (the first on ties): the anchor of the
        switching margin, and the reference of the routing table and of the cost figures."""
        from search.metrics import single_best  # metrics import torch: only when asked

        _, y, mask = self.split("train")
        return single_best(y, mask)

    def split_cost(self, name: str) -> np.ndarray:
        """Cost rows of one split, unknown costs filled with that model's mean cost on train.

        Raises:
            DataError: When the data has no costs.
        """
        if self.cost is None:
            raise DataError(f"data {self.source}: no costs (add a cost column; see the README, Costs)")
        rows = self.cost[self.splits[name]]
        mean = self.mean_cost()
        return np.where(np.isnan(rows), mean[None, :], rows).astype(np.float32)

    def mean_cost(self) -> np.ndarray:
        """Each model's mean cost per query on train ([M]; 0 for a model with none known)."""
        if self.cost is None:
            raise DataError(f"data {self.source}: no costs (add a cost column; see the README, Costs)")
        rows = self.cost[self.splits["train"]]
        known = ~np.isnan(rows)
        total = np.where(known, rows, 0.0).sum(0)
        return np.where(known.any(0), total / np.maximum(known.sum(0), 1), 0.0).astype(np.float32)

    def saved_with(self) -> dict[str, Any]:
        """What every router trained on this data records about it (``save_router``'s
        ``model_names``, ``encoder`` and ``costs``, and its tasks in ``metadata.task_names``)."""
        return {
            "model_names": list(self.model_names),
            "encoder": self.encoder,
            "costs": self.mean_cost().tolist() if self.cost is not None else None,
            "task_names": list(self.task_names) if self.task_names else None,
        }

    def check_embedding_dim(self, expected: int | None, where: str) -> None:
        """Raise DataError if a config expects another embedding width than the data has."""
        if expected is not None and int(expected) != self.embedding_dim:
            raise DataError(
                f"{where}: embedding_dim is {expected} but the data ({self.source}) has "
                f"{self.embedding_dim}-d embeddings"
            )

    def arrays(self) -> dict[str, Any]:
        """Plain numpy arrays and lists, for the object store (read back zero-copy); the texts
        stay behind (a trial reads embeddings).

        Shallow: ``dataclasses.asdict`` would deep-copy every array first.
        """
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["texts"] = None
        return out


def index_tasks(values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each value's index into the sorted task names (int32), and the names."""
    names = sorted(set(values))
    index = {name: i for i, name in enumerate(names)}
    return np.asarray([index[v] for v in values], dtype=np.int32), names


def split_by_question(n: int, seed: int = 0, rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
    """A seeded 80/10/10 split of ``n`` questions (sorted indices per split), drawn from ``rng``
    when given (synthetic data draws it from its own stream), else from ``seed``."""
    perm = (rng if rng is not None else np.random.default_rng(seed)).permutation(n)
    n_train, n_val = int(0.8 * n), int(0.1 * n)
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def no_signal(data: RouterData) -> str | None:
    """Why the data cannot train or pick a router (an LLM never observed on train, a split with
    no observed pair, or one label only: nothing to learn on train, no AUC and no ranking on
    val); None when it can."""
    _, _, m_train = data.split("train")
    unseen = np.flatnonzero(~m_train.any(axis=0))
    if unseen.size:
        names = ", ".join(repr(data.model_names[j]) for j in unseen[:3]) + (" ..." if unseen.size > 3 else "")
        return (
            f"data {data.source}: {unseen.size} of {data.num_models} LLMs have no score on train ({names}): "
            "no router can learn them, and a routing table would route to them blind; give their train "
            "scores, or leave them out of the data"
        )
    for split in ("train", "val"):
        _, y, m = data.split(split)
        observed = y[m]
        if observed.size == 0:
            return f"data {data.source}: the {split} split has no observed (question, LLM) pair"
        if (observed == observed[0]).all():
            return (
                f"data {data.source}: every observed label in the {split} split is {observed[0]:g} "
                f"({observed.size:,} pairs), so it carries no signal for a router; check the labels "
                "or the split"
            )
    return None
