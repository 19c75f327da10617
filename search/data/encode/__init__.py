"""Text into embeddings: templates, encoders found locally and their identity, the cache.

``embed(texts, encoder)`` is the one embedding step: from the cache when the same encoder,
template and texts were embedded before, else with the encoder (and kept in the cache).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from search.data.encode.cache import cache_key, load_cached, store
from search.data.encode.encoder import Encoder, EncoderIdentity, find_encoder, load_encoder
from search.data.encode.template import TEXT_FIELDS, Template, default_template

__all__ = [
    "TEXT_FIELDS",
    "Encoder",
    "EncoderIdentity",
    "Template",
    "default_template",
    "embed",
    "find_encoder",
    "load_encoder",
]


def embed(texts: Sequence[str], encoder: Encoder) -> tuple[np.ndarray, bool]:
    """``(embeddings, from_cache)``: float32 [len(texts), dim]."""
    key = cache_key(encoder.identity, texts)
    cached = load_cached(key, len(texts), encoder.identity.dim)
    if cached is not None:
        return cached, True
    X = encoder.encode(texts)
    store(key, X, encoder.identity)
    return X, False
