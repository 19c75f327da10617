"""Priors over groups of queries: each LLM's mean score in the query's group, as a logit.

A router with a prior predicts a residual over it: ``logit = logit(prior[group, LLM]) + f(x)``.
The group of a query is
- ``none``: one group, all queries (the prior is each LLM's mean score: the single best LLM);
- ``task``: the query's task, when the caller knows it (``tasks``); a query without one takes
  the task whose train centroid is nearest (cosine);
- ``cluster``: the nearest of ``clusters`` centroids of the train embeddings (spherical k-means,
  seeded), so a prior exists where the data states no tasks.

Each group's mean is shrunk toward the LLM's overall mean by ``strength`` pseudo-questions:
``(hits + strength x overall) / (seen + strength)``; a group with no observed score of an LLM
takes its overall mean. ``strength`` 0 with task groups is the best-LLM-per-task baseline.

The prior is fitted from the train split in one step (:meth:`GroupPrior.fit`) and saved as two
buffers: ``table`` (probabilities ``[G, M]``) and ``centroids`` (unit vectors ``[G, d]``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from router_models.errors import ConfigError
from router_models.probs import prob_logit

PRIORS = ("none", "task", "cluster")
MAX_GROUPS = 4096  # clusters at most (a data set's tasks are as many as it has)
KMEANS_SEED = 0  # clusters do not depend on a trial's seed: trials with equal settings share them


def check_prior(
    prior: Any, clusters: Any, strength: Any, task_names: Any
) -> tuple[str, int, float, list[str] | None]:
    """The prior settings checked (ConfigError showing the bad value): ``(kind, groups,
    strength, task names)``, ``groups`` being how many groups the prior has."""
    if prior not in PRIORS:
        raise ConfigError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
    if isinstance(clusters, bool) or not isinstance(clusters, int) or not 1 <= clusters <= MAX_GROUPS:
        raise ConfigError(f"clusters must be an integer from 1 to {MAX_GROUPS}, got {clusters!r}")
    if (
        isinstance(strength, bool)
        or not isinstance(strength, (int, float))
        or not math.isfinite(strength)
        or strength < 0
    ):
        raise ConfigError(f"prior_strength must be a finite number >= 0, got {strength!r}")
    names = None
    if task_names is not None:
        if (
            isinstance(task_names, (str, bytes))
            or not isinstance(task_names, (list, tuple))
            or not all(isinstance(n, str) and n for n in task_names)
            or len(set(task_names)) != len(task_names)
        ):
            raise ConfigError(f"task_names must be a list of distinct non-empty names, got {task_names!r}")
        names = list(task_names)
    if prior == "task" and not names:
        raise ConfigError(
            "prior 'task' needs task_names (the data's tasks, which a search fills in); the data has none"
        )
    groups = {"none": 1, "task": len(names or ()), "cluster": int(clusters)}[prior]
    return prior, groups, float(strength), names


@torch.no_grad()
def kmeans(X: torch.Tensor, k: int, seed: int = KMEANS_SEED, iters: int = 30) -> torch.Tensor:
    """``k`` unit centroids of the rows of ``X`` by cosine (spherical k-means, k-means++ seeding
    from ``seed``): the same rows and seed give the same centroids.

    Raises:
        ValueError: ``k`` is not in [1, rows of X].
    """
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= {n} rows, got k={k}")
    Z = F.normalize(X.float(), dim=1)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    first = int(torch.randint(n, (1,), generator=gen))
    centroids = [Z[first]]
    dist = (1.0 - Z @ Z[first]).clamp_min(0.0)
    for _ in range(1, k):  # k-means++: far points are likelier seeds
        weights = dist.double().cpu()
        pick = (
            int(torch.multinomial(weights, 1, generator=gen))
            if float(weights.sum()) > 0
            else int(torch.randint(n, (1,), generator=gen))
        )
        centroids.append(Z[pick])
        dist = torch.minimum(dist, (1.0 - Z @ Z[pick]).clamp_min(0.0))
    C = torch.stack(centroids)
    for _ in range(iters):
        assign = (Z @ C.T).argmax(1)
        sums = torch.zeros_like(C).index_add_(0, assign, Z)
        counts = torch.bincount(assign, minlength=k)
        # an empty cluster keeps its centroid
        new = torch.where(counts[:, None] > 0, F.normalize(sums, dim=1), C)
        if torch.equal(new, C):
            break
        C = new
    return C


class GroupPrior(nn.Module):
    """The prior of a router: each LLM's smoothed mean score per group (module doc).

    Args:
        kind: ``none``, ``task`` or ``cluster``.
        groups: How many groups (1 for none, the tasks for task, the clusters for cluster).
        num_models: LLMs, >= 1. input_dim: Embedding width, >= 1.
        strength: Pseudo-questions each group's mean is shrunk toward the overall mean by.
    """

    table: torch.Tensor
    centroids: torch.Tensor

    def __init__(self, kind: str, groups: int, num_models: int, input_dim: int, strength: float) -> None:
        super().__init__()
        self.kind = kind
        self.groups = groups
        self.strength = strength
        self.register_buffer("table", torch.full((groups, num_models), 0.5))
        self.register_buffer("centroids", torch.zeros(groups, input_dim))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, groups={self.groups}, strength={self.strength}"

    def assign(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
        """Each query's group ``[B]`` (long): its task where ``tasks`` gives one (>= 0) and the
        prior is over tasks, else the nearest centroid of its raw embedding."""
        if self.groups == 1:
            return torch.zeros(x.shape[-2], dtype=torch.long, device=x.device)
        if self.kind == "task" and tasks is not None:
            tasks = tasks.to(device=x.device, dtype=torch.long)
            unknown = tasks < 0
            if not bool(unknown.any()):  # every task given: no centroid to compare
                return tasks
            nearest = (F.normalize(x[..., unknown, :].float(), dim=-1) @ self.centroids.T).argmax(-1)
            return tasks.masked_scatter(unknown, nearest)
        return (F.normalize(x.float(), dim=-1) @ self.centroids.T).argmax(-1)

    def probs(self, groups: torch.Tensor) -> torch.Tensor:
        """The prior's probabilities ``[B, M]`` for groups ``[B]``."""
        return self.table[groups]

    def logits(self, groups: torch.Tensor) -> torch.Tensor:
        return prob_logit(self.table[groups])

    @torch.no_grad()
    def fit(
        self,
        X: torch.Tensor,
        Y: torch.Tensor,
        mask: torch.Tensor,
        tasks: torch.Tensor | None = None,
        centroids: torch.Tensor | None = None,
    ) -> None:
        """Fit the table and centroids from train rows: raw embeddings ``X [N, d]``, scores
        ``Y [N, M]``, observed pairs ``mask [N, M]``, each row's task (for a task prior) and,
        for a cluster prior, centroids already computed for these rows (else k-means here).

        Raises:
            ValueError: A task prior without tasks, tasks outside its groups, more clusters than
                rows, or rows that do not line up.
        """
        n = X.shape[0]
        if Y.shape[0] != n or mask.shape[0] != n or Y.shape[1] != self.table.shape[1]:
            raise ValueError(
                f"rows do not line up: X {tuple(X.shape)}, Y {tuple(Y.shape)}, mask {tuple(mask.shape)}"
            )
        Z = F.normalize(X.float(), dim=1)
        if self.kind == "task":
            if tasks is None:
                raise ValueError("a task prior needs each train question's task")
            groups = tasks.to(device=X.device, dtype=torch.long)
            if groups.numel() and (int(groups.min()) < 0 or int(groups.max()) >= self.groups):
                raise ValueError(f"tasks must be indices in [0, {self.groups - 1}]")
        elif self.kind == "cluster":
            C = centroids if centroids is not None else kmeans(X, self.groups)
            if C.shape != self.centroids.shape:
                raise ValueError(
                    f"centroids are {tuple(C.shape)}, the prior needs {tuple(self.centroids.shape)}"
                )
            groups = (Z @ C.to(Z.device).T).argmax(1)
        else:
            groups = torch.zeros(n, dtype=torch.long, device=X.device)
        y = Y.float() * mask.float()
        m = mask.float()
        seen_all = m.sum(0)
        overall = torch.where(seen_all > 0, y.sum(0) / seen_all.clamp_min(1.0), torch.zeros_like(seen_all))
        hits = torch.zeros(self.groups, y.shape[1], device=y.device).index_add_(0, groups, y)
        seen = torch.zeros_like(hits).index_add_(0, groups, m)
        a = self.strength
        shrunk = (hits + a * overall) / (seen + a).clamp_min(1e-12)
        self.table.copy_(torch.where(seen + a > 0, shrunk, overall.expand_as(shrunk)).to(self.table.device))
        if self.kind == "cluster":
            self.centroids.copy_(C.to(self.centroids.device))
        else:
            sums = torch.zeros(self.groups, Z.shape[1], device=Z.device).index_add_(0, groups, Z)
            self.centroids.copy_(F.normalize(sums, dim=1).to(self.centroids.device))
