"""Where a source's embeddings come from, decided in one place:

1. ``--embeddings FILE``: its rows (by order, or by the id column with ``--align id``). A file
   ``search data embed`` wrote says which encoder made it (``FILE.encoder.json``). With
   ``--encoder`` too, that record must be the encoder's identity (or, for a file without one,
   the width must be the encoder's), and the encoder is recorded as their maker.
2. The source's own embeddings (an EmbedLLM folder's question_embeddings, a built-in set's):
   used as they are, with their recorded encoder (if any). With ``--encoder`` of another
   identity and texts at hand, the texts are embedded with it instead.
3. Texts only: embedded with ``--encoder`` (cached, see ``encode/cache.py``); without one, one
   line says what to give.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.data.data_options import DataOptions
from search.data.encode import EncoderIdentity, embed, load_encoder
from search.data.tables import load_matrix
from search.errors import DataError
from search.files.atomic import atomic_write_bytes, write_json
from search.files.parse import ParseError, read_json


def _from_file(path: Path, source: str, n: int, ids: np.ndarray | None, align: str) -> np.ndarray:
    X = load_matrix(path)
    if align == "row":
        if X.shape[0] != n:
            raise DataError(f"{path}: {X.shape[0]} rows but {source} has {n} questions (aligned by row)")
        return X
    assert ids is not None
    bad = np.flatnonzero((ids < 0) | (ids >= X.shape[0]))
    if bad.size:
        raise DataError(f"{source}: id {ids[bad[0]]} is outside {path.name} (rows 0..{X.shape[0] - 1})")
    return np.ascontiguousarray(X[ids])


def embeddings_for(
    source: str,
    n: int,
    options: DataOptions,
    *,
    texts: Sequence[str] | None = None,
    template: str | None = None,
    texts_error: str | None = None,
    ids: np.ndarray | None = None,
    own: np.ndarray | None = None,
    own_encoder: dict[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """``(X float32 [n, d], the encoder identity that made X or None)`` for one source.

    Raises:
        DataError: No embeddings and nothing to make them with, a width that does not match
            the encoder's, or a file of another number of rows.
        UserError: The encoder cannot be found or loaded (one line).
    """
    spec = template or options.template or ""
    if options.embeddings is not None:
        path = Path(options.embeddings)
        X = _from_file(path, source, n, ids, options.align)
        made_by = _made_by(path)
        if options.encoder is None:
            return X, made_by.to_dict() if made_by else None
        identity = load_encoder(options.encoder, made_by.template if made_by else spec).identity
        if made_by is not None and (diff := made_by.mismatch(identity)) is not None:
            raise DataError(
                f"{path}: made by {made_by.describe()}, not by --encoder {options.encoder} ({diff})"
            )
        _check_width(X, identity, options.embeddings)
        return X, identity.to_dict()
    if own is not None:
        if options.encoder is None:
            return own, own_encoder
        encoder = load_encoder(options.encoder, spec)
        recorded = EncoderIdentity.from_dict(own_encoder, source) if own_encoder else None
        if recorded is not None and recorded.mismatch(encoder.identity) is None:
            return own, own_encoder  # the same encoder made them: nothing to embed
        if texts is None:
            _check_width(own, encoder.identity, source)
            return own, encoder.identity.to_dict()
        X, _ = embed(texts, encoder)
        return X, encoder.identity.to_dict()
    if texts is None:
        why = f" ({texts_error})" if texts_error else ""
        raise DataError(
            f"{source}: holds no embeddings; give --embeddings FILE (.npy or .pth), one row per question "
            f"in order (or per id, with --align id), or --encoder NAME|PATH to embed its texts{why}"
        )
    if options.encoder is None:
        raise DataError(
            f"{source}: holds no embeddings; give --embeddings FILE (.npy or .pth), one row per question, "
            "or --encoder NAME|PATH (a sentence-transformers model on this machine) to embed its texts"
        )
    encoder = load_encoder(options.encoder, spec)
    X, _ = embed(texts, encoder)
    return X, encoder.identity.to_dict()


def encoder_file(embeddings: Path) -> Path:
    """The record of the encoder that made an embeddings file (``search data embed`` writes it)."""
    return embeddings.with_name(embeddings.name + ".encoder.json")


def write_embeddings(path: Path, X: np.ndarray, encoder: dict[str, Any] | None) -> None:
    """An embeddings file (float32 .npy, one row per question) and, when the encoder that made it
    is known, its record beside it (:func:`encoder_file`), both atomically: what
    ``--embeddings`` reads back knowing its maker."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(X, dtype=np.float32))
    atomic_write_bytes(path, buf.getvalue())
    if encoder is not None:
        write_json(encoder_file(path), encoder)


def _made_by(embeddings: Path) -> EncoderIdentity | None:
    path = encoder_file(embeddings)
    if not path.is_file():
        return None
    try:
        raw = read_json(path, "encoder record")
    except ParseError as exc:
        raise DataError(str(exc)) from exc
    return EncoderIdentity.from_dict(raw, str(path))


def _check_width(X: np.ndarray, identity: EncoderIdentity, where: str) -> None:
    if X.shape[1] != identity.dim:
        raise DataError(
            f"{where}: {X.shape[1]}-d embeddings, but encoder {identity.name} makes {identity.dim}-d ones; "
            "they cannot be its embeddings"
        )
