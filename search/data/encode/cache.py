"""The embedding cache: texts embedded once per encoder, template and texts, on disk.

A key is the SHA-256 of the encoder's identity (what its embeddings depend on: its files'
hash, pooling, normalization, length, width and template; not its name or folder) and of the
texts in order, so a change of any of them misses and embeds again. Each entry is
``<key>.npy`` (float32) and ``<key>.json`` (the key, the identity, the count, the SHA-256 of the
array's bytes, when), written atomically. An entry is read only from a regular file whose size
is what its rows and width need (checked before anything is allocated), and only when its bytes
have the recorded hash: a damaged, foreign or hand-made entry is embedded again, never fatal.
The cache lives in ``RS_CACHE_DIR``, else ``$XDG_CACHE_HOME/router-search/embeddings``
(``~/.cache/...``); delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from search.data.encode.encoder import EncoderIdentity

META_MAX_BYTES = 1 << 20  # an entry's record is a few hundred bytes
HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


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
    """The cached embeddings under ``key``, or None (missing, not a regular file, another size
    or shape, bytes other than the recorded ones, damaged)."""
    path = cache_dir() / f"{key}.npy"
    meta_path = cache_dir() / f"{key}.json"
    try:
        if not (stat.S_ISREG(os.stat(path).st_mode) and stat.S_ISREG(os.stat(meta_path).st_mode)):
            return None  # a FIFO or a device would block or never end
        if meta_path.stat().st_size > META_MAX_BYTES:
            return None
        meta = json.loads(meta_path.read_bytes())
        if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("sha256"), str):
            return None
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version not in HEADERS:
                return None
            shape, fortran, dtype = HEADERS[version](fh)  # the header alone: nothing allocated
            if shape != (rows, dim) or fortran or dtype != np.dtype("<f4"):
                return None
            if os.fstat(fh.fileno()).st_size != fh.tell() + rows * dim * 4:
                return None
            raw = fh.read()
    except (OSError, ValueError, TypeError):
        return None
    if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
        return None  # another set's embeddings of the same shape, or bytes changed on disk
    X = np.frombuffer(raw, dtype="<f4").reshape(rows, dim).copy()
    return X if np.isfinite(X).all() else None


def store(key: str, X: np.ndarray, identity: EncoderIdentity) -> None:
    """Keep ``X`` under ``key``; a cache that cannot be written (a read-only or full disk) is
    passed over: the embeddings are still used, just not kept."""
    from search.files.atomic import atomic_write_bytes  # imports torch: only when a cache is written

    folder = cache_dir()
    buf = io.BytesIO()
    data = np.ascontiguousarray(X, dtype="<f4")
    np.save(buf, data)
    meta = {
        "key": key,
        "identity": identity.to_dict(),
        "rows": int(X.shape[0]),
        "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
        "created": time.time(),
    }
    try:
        atomic_write_bytes(folder / f"{key}.npy", buf.getvalue())
        atomic_write_bytes(folder / f"{key}.json", (json.dumps(meta, indent=2) + "\n").encode())
    except OSError:
        pass
