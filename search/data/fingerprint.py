"""What a run was trained on, recorded so a resume can tell the same data from other data: the
source, the LLM names, the embedding width, the question count and a content hash."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from search.data.router_data import SPLITS, RouterData


def content_hash(data: RouterData) -> str:
    """SHA-256 of everything a trial reads: embeddings, labels, observed pairs, costs, splits,
    LLM names and tasks (about 0.1 s for an EmbedLLM-size set)."""
    h = hashlib.sha256()
    for name, array in (("X", data.X), ("Y", data.Y), ("mask", data.mask), ("cost", data.cost)):
        h.update(name.encode())
        if array is not None:
            a = np.ascontiguousarray(array)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.view(np.uint8).reshape(-1).data if a.size else b"")
    for split in SPLITS:
        h.update(split.encode())
        h.update(np.ascontiguousarray(data.splits[split], dtype=np.int64).tobytes())
    h.update("\x00".join(data.model_names).encode())
    if data.tasks is not None:  # a task prior trains on them
        h.update(b"tasks")
        h.update(np.ascontiguousarray(data.tasks, dtype=np.int64).tobytes())
        h.update("\x00".join(data.task_names or ()).encode())
    return h.hexdigest()


def data_record(data: RouterData) -> dict[str, Any]:
    return {
        "source": data.source,
        "model_names": list(data.model_names),
        "embedding_dim": data.embedding_dim,
        "questions": int(data.X.shape[0]),
        "sha256": content_hash(data),
    }


def difference(recorded: dict[str, Any], given: dict[str, Any]) -> str | None:
    """What differs between two fingerprints, said for a person (None: the same data). The
    source alone may differ (a folder moved or mounted elsewhere) when the content is the same."""
    if recorded.get("sha256") == given["sha256"]:
        return None
    names_then, names_now = recorded.get("model_names") or [], given["model_names"]
    if recorded.get("embedding_dim") != given["embedding_dim"]:
        return f"{recorded.get('embedding_dim')}-d embeddings then, {given['embedding_dim']}-d now"
    if names_then != names_now:
        gone = [n for n in names_then if n not in names_now]
        new = [n for n in names_now if n not in names_then]
        if gone or new:
            parts = ([f"{len(gone)} LLM(s) gone ({gone[0]!r}...)"] if gone else []) + (
                [f"{len(new)} new ({new[0]!r}...)"] if new else []
            )
            return "other LLMs: " + ", ".join(parts)
        return "the same LLMs in another order"
    if recorded.get("questions") != given["questions"]:
        return f"{recorded.get('questions')} questions then, {given['questions']} now"
    return "the same shape, other contents (labels, embeddings, costs or splits differ)"
