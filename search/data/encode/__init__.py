"""Text into embeddings: templates, encoders found locally and their identity, the cache.

``embed(texts, encoder)`` is the one embedding step: from the cache when the same encoder,
template and texts were embedded before, else with the encoder (and kept in the cache).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from search.data.encode.cache import cache_key, load_cached, store
from search.data.encode.encoder import Encoder, EncoderIdentity, find_encoder, load_encoder
from search.data.encode.progress import duration
from search.data.encode.template import TEXT_FIELDS, Template, default_template
from search.log import TO_STDERR, logger

log = logger("data")

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


PROBE = 32  # texts timed before a long embedding, for its estimate


def embed(texts: Sequence[str], encoder: Encoder) -> tuple[np.ndarray, bool]:
    """``(embeddings, from_cache)``: float32 [len(texts), dim]. Says which, in one line: from
    the cache, or that it must embed, how many and about how long (timed on a few of them)."""
    key = cache_key(encoder.identity, texts)
    cached = load_cached(key, len(texts), encoder.identity.dim)
    name = encoder.identity.name
    if cached is not None:
        log.info(
            f"embeddings of {len(texts):,} texts by {name}: from the cache ({key[:12]})", extra=TO_STDERR
        )
        return cached, True
    estimate = _estimate(texts, encoder)
    log.info(
        f"embedding {len(texts):,} texts with {name} on {encoder.device} (not in the cache){estimate}",
        extra=TO_STDERR,
    )
    X = encoder.encode(texts)
    store(key, X, encoder.identity)
    return X, False


def _estimate(texts: Sequence[str], encoder: Encoder) -> str:
    """``: about 9 min 58 s at 20.1 texts/s on this machine``, timed on :data:`PROBE` texts
    spread over the set; "" for a set that takes seconds anyway."""
    if len(texts) < 8 * PROBE:
        return ""
    probe = [texts[i] for i in range(0, len(texts), len(texts) // PROBE)][:PROBE]
    start = time.perf_counter()
    encoder.encode(probe, progress=False)
    rate = len(probe) / max(time.perf_counter() - start, 1e-6)
    return f": about {duration(len(texts) / rate)} at {rate:.1f} texts/s on this machine"
