"""Synthetic router data with real structure, deterministic from a seed.

Questions fall into topic clusters in embedding space; each LLM has a general ability, a skill
per topic and a finer preference along random directions within a topic; questions have a
difficulty; labels are Bernoulli draws with some flipped (label noise). So a router that reads
the embedding beats the single best LLM, and stays well under the oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from search.data.router_data import split_by_question
from search.limits import SEED_MAX, SYNTHETIC_MAX, SYNTHETIC_MAX_VALUES


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes and difficulty of a synthetic data set.

    Args:
        n_questions: Questions, >= 30 (10 per split at least).
        n_models: LLMs, >= 2.
        dim: Embedding width, >= 2.
        n_topics: Topic clusters, >= 1.
        label_noise: Share of labels flipped, in [0, 0.5).
        missing: Share of (question, model) pairs left unobserved, in [0, 0.9].
        seed: Everything follows from it.
    """

    n_questions: int = 4000
    n_models: int = 112
    dim: int = 768
    n_topics: int = 16
    label_noise: float = 0.05
    missing: float = 0.02
    seed: int = 0

    def source(self) -> str:
        """The data spec that rebuilds this set: ``synthetic:key=value,...``."""
        return "synthetic:" + ",".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))

    def __post_init__(self) -> None:
        for name, low in (("n_questions", 30), ("n_models", 2), ("dim", 2), ("n_topics", 1)):
            value, high = getattr(self, name), SYNTHETIC_MAX[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"synthetic {name} must be an integer from {low} to {high:,}, got {value!r}")
        values = self.n_questions * (self.dim + 3 * self.n_models)
        if values > SYNTHETIC_MAX_VALUES:
            raise ValueError(
                f"synthetic n_questions {self.n_questions:,} x (dim {self.dim} + 3 x n_models "
                f"{self.n_models}) is {values:,} values; at most {SYNTHETIC_MAX_VALUES:,} (about 4 GB)"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise ValueError(f"synthetic seed must be an integer from 0 to {SEED_MAX}, got {self.seed!r}")
        if not 0.0 <= self.label_noise < 0.5:  # also refuses NaN
            raise ValueError(f"synthetic label_noise must be in [0, 0.5), got {self.label_noise!r}")
        if not 0.0 <= self.missing <= 0.9:
            raise ValueError(f"synthetic missing must be in [0, 0.9], got {self.missing!r}")


def make_synthetic(
    spec: SyntheticSpec,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], dict[str, np.ndarray]]:
    """Generate ``(X, Y, mask, model_names, splits)`` for ``spec`` (80/10/10 split by question)."""
    rng = np.random.default_rng(spec.seed)
    n, m, d, t = spec.n_questions, spec.n_models, spec.dim, spec.n_topics

    centers = rng.standard_normal((t, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    topic = rng.integers(0, t, size=n)
    # Questions scatter around their topic center; normalized like sentence embeddings.
    X = centers[topic] + 1.5 * rng.standard_normal((n, d)) / np.sqrt(d)
    X /= np.linalg.norm(X, axis=1, keepdims=True)

    ability = rng.normal(0.0, 0.8, size=m)
    # Stronger models tend to be strong everywhere, but topic skill varies a lot.
    topic_skill = rng.normal(0.0, 1.2, size=(m, t))
    # A finer, within-topic preference: a few latent directions each LLM likes or dislikes.
    k = 8
    directions = rng.standard_normal((d, k)) / np.sqrt(d)
    taste = rng.normal(0.0, 1.0, size=(m, k))
    # Most questions are of ordinary difficulty; a few are beyond almost every LLM.
    difficulty = rng.normal(0.0, 1.0, size=n) + 6.0 * (rng.random(n) < 0.08)

    latent = (X @ directions) * np.sqrt(d) / 2.0
    logit = ability[None, :] + topic_skill[:, topic].T + 0.6 * latent @ taste.T
    logit -= 1.0 * difficulty[:, None] + 0.4
    p = 1.0 / (1.0 + np.exp(-logit))
    Y = (rng.random((n, m)) < p).astype(np.float32)
    flip = rng.random((n, m)) < spec.label_noise
    Y[flip] = 1.0 - Y[flip]
    mask = rng.random((n, m)) >= spec.missing
    mask[np.arange(n), rng.integers(0, m, size=n)] = True  # every question observed at least once
    Y[~mask] = 0.0

    splits = split_by_question(n, rng=rng)
    names = [f"synthetic-llm-{i:03d}" for i in range(m)]
    return X.astype(np.float32), Y, mask, names, splits
