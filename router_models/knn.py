"""The k-nearest-neighbour router ("knn"): each LLM's score over the most similar train
questions, shrunk toward a prior."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from router_models.base_model import BaseModel, check_positive_int
from router_models.errors import ConfigError
from router_models.model_factory import register_model
from router_models.probs import prob_logit

WEIGHTINGS = ("uniform", "similarity")
MAX_REFERENCES = 50_000  # the default cap on a kNN router's reference set (see KNNModel)
QUERY_CHUNK = 1024  # queries per similarity block: [chunk, references] floats at a time


@register_model("knn")
class KNNModel(BaseModel):
    """A router that keeps its training questions: for a query, the ``k`` train questions most
    similar to it (cosine of raw embeddings) vote, each LLM's score being

        (sum_i w_i * score_i + s * prior) / (sum_i w_i * observed_i + s)

    over the neighbours ``i`` where that LLM was observed, ``s`` = ``prior_strength``
    pseudo-votes for the prior (each LLM's mean score in the query's group: overall with
    ``prior: none``, its task's, its cluster's). Weights are 1 (``uniform``) or
    ``k * softmax(similarity / temperature)`` (``similarity``: closer questions count more;
    the weights still sum to ``k``).

    It has no parameters: :meth:`fit` keeps the reference set (``references`` rows of raw
    embeddings, unit-normalized, with their scores and observed pairs; a train split larger than
    that keeps a seeded uniform sample of it), which is saved with the router. Its size is
    ``references x (input_dim + 2 x num_models) x 4`` bytes: 9,625 questions of 384-d with 29
    LLMs is 15.7 MB. A search caps it at 50,000 references (:data:`MAX_REFERENCES`).

    Args:
        k: Neighbours, >= 1 (at most the references).
        weighting: ``uniform`` or ``similarity``.
        temperature: Of the similarity weighting, > 0.
        references: The reference set's size (the search sets it from the data).
        **common: ``BaseModel``'s settings; the prior's (``prior``, ``clusters``,
            ``prior_strength``, ``task_names``) are used, ``hidden_dims`` must be empty.
    """

    fitted = True
    requires_hidden = False
    always_prior = True
    data_keys = ("task_names", "references")
    keys: torch.Tensor
    values: torch.Tensor
    seen: torch.Tensor

    def __init__(
        self,
        k: int = 20,
        weighting: str = "uniform",
        temperature: float = 0.05,
        references: int = 1,
        **common: Any,
    ) -> None:
        check_positive_int("k", k)
        check_positive_int("references", references)
        if weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}")
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not (math.isfinite(temperature) and temperature > 0)
        ):
            raise ConfigError(f"temperature must be a number > 0, got {temperature!r}")
        if common.get("hidden_dims"):
            raise ConfigError(
                f"hidden_dims: a knn router has no hidden layers, got {common['hidden_dims']!r}"
            )
        common["hidden_dims"] = []
        super().__init__(
            k=int(k),
            weighting=weighting,
            temperature=float(temperature),
            references=int(references),
            **common,
        )
        self.k, self.weighting, self.temperature = int(k), weighting, float(temperature)
        self.hidden_layers = torch.nn.ModuleList()
        self.register_buffer("keys", torch.zeros(references, self.input_dim))
        self.register_buffer("values", torch.zeros(references, self.output_dim))
        self.register_buffer("seen", torch.zeros(references, self.output_dim))

    def set_input_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Kept the identity: neighbours are found by the cosine of raw embeddings."""

    @torch.no_grad()
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        mask: torch.Tensor,
        tasks: torch.Tensor | None = None,
        centroids: torch.Tensor | None = None,
    ) -> None:
        """Fit the prior and keep the references (a seeded sample when the rows are more).

        Raises:
            ValueError: Fewer rows than ``references``.
        """
        super().fit(X, Y, mask, tasks, centroids)
        n, keep = X.shape[0], self.keys.shape[0]
        if n < keep:
            raise ValueError(f"the knn router keeps {keep} references but got {n} train rows")
        rows = torch.arange(n)
        if n > keep:
            gen = torch.Generator().manual_seed(0)
            rows = torch.randperm(n, generator=gen)[:keep].sort().values
        rows = rows.to(X.device)
        self.keys.copy_(F.normalize(X[rows].float(), dim=1).to(self.keys.device))
        m = mask[rows].float()
        self.values.copy_((Y[rows].float() * m).to(self.values.device))
        self.seen.copy_(m.to(self.seen.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.prior is not None
        return self.combine(x, self.prior.assign(x))

    def combine(self, x: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        assert self.prior is not None
        prior = self.prior.probs(groups)
        q = F.normalize(x.float(), dim=-1)
        k = min(self.k, self.keys.shape[0])
        s = self.prior_strength
        out = []
        for i in range(0, q.shape[0], QUERY_CHUNK):
            sims, idx = (q[i : i + QUERY_CHUNK] @ self.keys.T).topk(k, dim=1)
            if self.weighting == "similarity":
                w = torch.softmax(sims / self.temperature, dim=1) * k
            else:
                w = torch.ones_like(sims)
            hits = torch.einsum("qk,qkm->qm", w, self.values[idx])
            seen = torch.einsum("qk,qkm->qm", w, self.seen[idx])
            p0 = prior[i : i + QUERY_CHUNK]
            total = seen + s
            vote = (hits + s * p0) / total.clamp_min(1e-12)
            out.append(torch.where(total > 0, vote, p0))
        return prob_logit(torch.cat(out) if out else prior)
