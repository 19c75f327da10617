"""The embedding cache: texts embedded once per encoder, template and texts, on disk.

A key is the SHA-256 of the encoder's identity (what its embeddings depend on: its files'
hash, pooling, normalization, length, width and template; not its name or folder) and of the
texts in order, so a change of any of them misses and embeds again. Each entry is
``<key>.npy`` (float32) and ``<key>.json`` (the identity, the count, when), written atomically;
a damaged entry is embedded again. The cache lives in ``RS_CACHE_DIR``, else
``$XDG_CACHE_HOME/router-search/embeddings`` (``~/.cache/...``); delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search.data.encode.encoder import EncoderIdentity


def cache_dir() -> Path:
    if os.environ.get("RS_CACHE_DIR"):
        return Path(os.environ["RS_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return base / "router-search" / "embeddings"


def cache_key(identity: EncoderIdentity, texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    fields = {k: v for k, v in identity.to_dict().items() if k != "name"}
    h.update(json.dumps(fields, sort_keys=True).encode() + b"\0")
    h.update(str(len(texts)).encode() + b"\0")
    for text in texts:
        raw = text.encode("utf-8", "surrogatepass")
        h.update(str(len(raw)).encode() + b":" + raw)
    return h.hexdigest()


def load_cached(key: str, rows: int, dim: int) -> np.ndarray | None:
    """The cached embeddings under ``key``, or None (missing, damaged, or of another shape)."""
    path = cache_dir() / f"{key}.npy"
    try:
        X = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if X.dtype != np.float32 or X.shape != (rows, dim) or not np.isfinite(X).all():
        return None
    return X


def store(key: str, X: np.ndarray, identity: EncoderIdentity) -> None:
    """Keep ``X`` under ``key``; a cache that cannot be written (a read-only or full disk) is
    passed over: the embeddings are still used, just not kept."""
    from search.io import atomic_write_bytes  # imports torch: only when a cache is written

    folder = cache_dir()
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(X, dtype=np.float32))
    meta = {"identity": identity.to_dict(), "rows": int(X.shape[0]), "created": time.time()}
    try:
        atomic_write_bytes(folder / f"{key}.npy", buf.getvalue())
        atomic_write_bytes(folder / f"{key}.json", (json.dumps(meta, indent=2) + "\n").encode())
    except OSError:
        pass
