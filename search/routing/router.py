"""A saved router in use: texts or embeddings in, LLM names out.

``Router.load(ROUTER.pt or RUN_DIR)`` wraps a router file (given a run dir: the router the run
recommends, chosen on val). ``route(texts)`` embeds them with the router's recorded encoder and
returns each text's LLM, with the offsets saved with the router (the switching margin tuned on
val, or ``-lambda x cost`` for a budget): exactly the decision the routing table measures.
``scores(texts)`` gives every LLM's predicted correctness; ``route_embeddings`` and
``scores_embeddings`` do the same for embeddings made as the training data's were.

Text needs the router's encoder on this machine: by its recorded name, or a local copy given as
``encoder`` (a folder), accepted only when its identity (files, pooling, normalization, length,
width) is the recorded one; a router trained on embeddings of an encoder nobody recorded
cannot route text. ``search route`` and ``search serve`` use this class.

    router = Router.load("runs/residual-.../")
    router.route(["What is the derivative of x**2?"])    # ['Meta-Llama-3.1-70B-Instruct']
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from router_models import BaseModel, GroupPrior, load_router, route
from search.arguments import PATH, check, optional
from search.data.encode import Encoder, EncoderIdentity, load_encoder
from search.errors import UserError
from search.metrics.costs import lambda_for_budget
from search.results.export import recommended_router
from search.routing.inference import predict

CHUNK = 8192  # queries per forward pass


@dataclass
class Decision:
    """The routing of a batch: each query's LLM (index and name) and every LLM's predicted
    correctness ([n, M])."""

    index: np.ndarray
    names: list[str]
    scores: np.ndarray

    @property
    def chosen_scores(self) -> np.ndarray:
        return self.scores[np.arange(len(self.index)), self.index]


class Router:
    """A saved router (see the module doc); build with :meth:`load`."""

    def __init__(
        self, model: torch.nn.Module, info: dict[str, Any], path: Path, encoder: str | None = None
    ) -> None:
        self.model = model.eval()  # in use, never trained: eval once, not per call
        self._forward: Any = self.model  # the eager model, or its frozen graph (freeze)
        self.info = info
        self.path = path
        self.chosen = ""  # set by load for a run dir: which of its routers
        self._encoder_spec = encoder
        self._encoder: Encoder | None = None
        recorded = info.get("encoder")
        self.identity = EncoderIdentity.from_dict(recorded, str(path)) if recorded else None

    @classmethod
    def load(cls, path: str | Path, encoder: str | None = None) -> Router:
        """A router file, or a run dir's recommended router; ``encoder``: a local copy of its
        encoder (checked against its identity when first used).

        Raises:
            UserError / ConfigError: Not a router file or run dir (one line).
        """
        check("Router.load", path=(path, PATH), encoder=(encoder, optional(PATH)))
        path = Path(path)
        chosen = ""
        if path.is_dir():
            path, chosen = recommended_router(path)
        model, info = load_router(path)
        router = cls(model, info, path, encoder)
        router.chosen = chosen
        return router

    # -- what it is ---------------------------------------------------------------------------
    @property
    def base_model(self) -> BaseModel:
        """The router's model (every saved router is one of the registered models)."""
        assert isinstance(self.model, BaseModel)
        return self.model

    @property
    def names(self) -> list[str]:
        n = int(self.info["num_models"])
        return list(self.info.get("model_names") or [str(j) for j in range(n)])

    @property
    def task_names(self) -> list[str]:
        """The tasks its training data had (a query's task is one of them), else []."""
        names = (self.info.get("metadata") or {}).get("task_names")
        return [str(n) for n in names] if isinstance(names, list) else []

    @property
    def reads_tasks(self) -> bool:
        """Whether a query's task changes its routing (a task prior in the router or a member)."""
        return any(isinstance(m, GroupPrior) and m.kind == "task" for m in self.model.modules())

    def task_indices(self, tasks: Sequence[str | None] | None, n: int) -> torch.Tensor | None:
        """Task names (None: not known, the router infers it) as the router's indices, -1 for
        unknown; None when no task is given.

        Raises:
            UserError: A count that is not one per query, or a name the router does not know.
        """
        if tasks is None or all(t is None for t in tasks):
            return None
        if len(tasks) != n:
            raise UserError(f"got {len(tasks)} tasks for {n} queries; give one per query (or none)")
        known = {name: i for i, name in enumerate(self.task_names)}
        out = []
        for t in tasks:
            if t is not None and t not in known:
                valid = ", ".join(self.task_names) if known else "none: its data had no tasks"
                raise UserError(
                    f"task {t!r} is not one of the router's tasks ({valid}); leave it out and the "
                    "router takes the task nearest the query"
                )
            out.append(-1 if t is None else known[t])
        return torch.tensor(out, dtype=torch.long)

    @property
    def embedding_dim(self) -> int:
        return int(self.info["embedding_dim"])

    @property
    def offsets(self) -> list[float]:
        return list(self.info["offsets"])

    @property
    def rule(self) -> str:
        return str(self.info["routing"].get("rule", "plain argmax (no offsets saved)"))

    @property
    def costs(self) -> list[float] | None:
        costs = self.info.get("costs")
        return [float(c) for c in costs] if costs is not None else None

    def lambda_for_budget(self, budget: float) -> float:
        """The smallest willingness to pay whose mean cost per query on val was at most
        ``budget`` (the largest on the router's val cost curve when none was), the rule the
        search exports a budget's router by.

        Raises:
            UserError: The router knows no costs or records no val cost curve, or a bad budget.
        """
        if not (isinstance(budget, (int, float)) and np.isfinite(budget) and budget >= 0):
            raise UserError(f"budget must be a number >= 0, got {budget!r}")
        self._costs_known("a budget")
        curve = self.info["routing"].get("cost_curve")
        if not isinstance(curve, dict) or not curve.get("lambda"):
            raise UserError(
                f"{self.path}: records no val cost curve (saved before routers kept one), so a budget "
                "cannot be met; give lambda instead"
            )
        lam, _ = lambda_for_budget(np.asarray(curve["val_cost"]), curve["lambda"], float(budget))
        return lam

    def _costs_known(self, what: str) -> list[float]:
        costs = self.costs
        if costs is None:
            raise UserError(
                f"{self.path}: knows no LLM costs (its data had none), so it has no {what} to set"
            )
        return costs

    def offsets_for(
        self, plain: bool = False, lam: float | None = None, budget: float | None = None
    ) -> list[float]:
        """The offsets a decision uses: the saved ones; zeros (``plain``); ``-lam x cost``; or
        ``-lambda x cost`` at the lambda that meets ``budget`` on val.

        Raises:
            UserError: ``lam`` or ``budget`` for a router that knows no costs, both, or a bad value.
        """
        if lam is not None and budget is not None:
            raise UserError("give a budget or a lambda, not both")
        if plain:
            return [0.0] * len(self.names)
        if budget is not None:
            lam = self.lambda_for_budget(budget)
        if lam is None:
            return self.offsets
        costs = self._costs_known("lambda")
        if isinstance(lam, bool) or not (isinstance(lam, (int, float)) and np.isfinite(lam) and lam >= 0):
            raise UserError(f"lambda must be a number >= 0, got {lam!r}")
        return [-float(lam) * c for c in costs]

    # -- embeddings in --------------------------------------------------------------------------
    def check_embeddings(self, X: np.ndarray, where: str) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.embedding_dim:
            raise UserError(
                f"{where}: {X.shape[-1] if X.ndim else 0}-d embeddings, but {self.path} reads "
                f"{self.embedding_dim}-d ones (embed the queries with the model its training data used)"
            )
        return np.ascontiguousarray(X, dtype=np.float32)

    def logits(
        self, X: np.ndarray, where: str = "embeddings", tasks: Sequence[str | None] | None = None
    ) -> torch.Tensor:
        """The router's logits ``[n, M]`` for embeddings ``X`` ``[n, dim]`` (``tasks``: each
        query's task name or None, read by a task prior; see :meth:`task_indices`)."""
        X = self.check_embeddings(X, where)
        t = self.task_indices(tasks, len(X))
        if len(X) > CHUNK:
            return predict(self.model, torch.from_numpy(X), CHUNK, tasks=t)
        with torch.inference_mode():  # the hot path of a served router: no mode switches
            if t is not None:
                return self.model(torch.from_numpy(X), t).float()
            return self._forward(torch.from_numpy(X)).float()

    def freeze(self) -> bool:
        """Trace the model into a frozen TorchScript graph for small batches, as a served router
        sees them (no Python per layer: on 2 CPU cores a 1.7M-parameter residual router took
        0.5 ms instead of 1.6 for one query, 1.3 instead of 2.4 for 8). Kept only when it gives
        the eager model's logits on probe batches of 1, 8 and 72 queries; else the eager model
        stays. Returns whether the graph is used."""
        gen = torch.Generator().manual_seed(0)
        probe = torch.randn(8, self.embedding_dim, generator=gen)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python branches it fixed
                graph = torch.jit.freeze(torch.jit.trace(self.model, probe))
                same = all(
                    torch.allclose(graph(p), self.model(p), rtol=1e-5, atol=1e-6)
                    for p in (probe, probe[:1], torch.randn(72, self.embedding_dim, generator=gen))
                )
        except Exception:  # a model the tracer cannot follow: the eager one serves
            return False
        if same:
            self._forward = graph
        return bool(same)

    def decide_logits(
        self, logits: torch.Tensor, offsets: Sequence[float], allowed: torch.Tensor | None = None
    ) -> Decision:
        """The decision for logits at ``offsets`` (from :meth:`offsets_for`); ``allowed``: a bool
        ``[M]`` of the LLMs that may be chosen (all when None)."""
        mask = allowed.expand_as(logits) if allowed is not None else None
        index = route(logits, offsets, mask).numpy()
        names = self.names
        return Decision(index, [names[i] for i in index.tolist()], torch.sigmoid(logits.float()).numpy())

    def decide_embeddings(
        self,
        X: np.ndarray,
        plain: bool = False,
        lam: float | None = None,
        where: str = "embeddings",
        budget: float | None = None,
        tasks: Sequence[str | None] | None = None,
    ) -> Decision:
        return self.decide_logits(self.logits(X, where, tasks), self.offsets_for(plain, lam, budget))

    def route_embeddings(
        self,
        X: np.ndarray,
        plain: bool = False,
        lam: float | None = None,
        budget: float | None = None,
        tasks: Sequence[str | None] | None = None,
    ) -> list[str]:
        return self.decide_embeddings(X, plain, lam, budget=budget, tasks=tasks).names

    def scores_embeddings(self, X: np.ndarray) -> np.ndarray:
        return self.decide_embeddings(X).scores

    # -- texts in -------------------------------------------------------------------------------
    @property
    def encoder_spec(self) -> str | None:
        """Where its encoder is loaded from: the local copy given, else the recorded name (None:
        it records no encoder)."""
        return self._encoder_spec or (self.identity.name if self.identity else None)

    @property
    def encoder(self) -> Encoder:
        """The router's encoder, loaded on first use and checked against the recorded identity.

        Raises:
            UserError: The router records no encoder; the encoder is not on this machine; or
                the one given (or found) is another.
        """
        if self._encoder is not None:
            return self._encoder
        if self.identity is None:
            raise UserError(
                f"{self.path}: trained on precomputed embeddings of an encoder nobody recorded, so it "
                "cannot embed text; route embeddings made as its training data's were"
            )
        spec = self._encoder_spec or self.identity.name
        try:
            encoder = load_encoder(spec, self.identity.template)
        except UserError as exc:
            if self._encoder_spec:
                raise
            raise UserError(f"{exc}; or give --encoder PATH, a local copy of it") from exc
        diff = self.identity.mismatch(encoder.identity)
        if diff is not None:
            raise UserError(
                f"encoder {spec}: not the encoder {self.path} was trained with ({diff}); it was trained "
                f"with {self.identity.describe()}; given {encoder.identity.describe()}"
            )
        self._encoder = encoder
        return encoder

    def load_encoder(self) -> Encoder:
        """Load (once) and check the router's encoder now, so a text source fails before it is
        read when the encoder is missing or another (see :attr:`encoder`)."""
        return self.encoder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The texts' embeddings by the router's encoder.

        Raises:
            UserError: No texts, or an empty or blank one (nothing to route on).
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise UserError("no texts to route")
        blank = next((i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()), None)
        if blank is not None:
            raise UserError(f"text {blank}: the prompt is empty (or not a text); nothing to route on")
        return self.encoder.encode(list(texts), progress=False)

    def decide(
        self,
        texts: Sequence[str],
        plain: bool = False,
        lam: float | None = None,
        budget: float | None = None,
        tasks: Sequence[str | None] | None = None,
    ) -> Decision:
        if isinstance(texts, str):
            texts = [texts]
        self.task_indices(tasks, len(texts))  # a bad task fails before the texts are embedded
        return self.decide_embeddings(self.embed(texts), plain, lam, budget=budget, tasks=tasks)

    def route(
        self,
        texts: Sequence[str],
        plain: bool = False,
        lam: float | None = None,
        budget: float | None = None,
        tasks: Sequence[str | None] | None = None,
    ) -> list[str]:
        """Each text's LLM name (at the saved offsets; or plain, at ``lam``, or meeting
        ``budget``); ``tasks``: each text's task (a router with a task prior reads it; one left
        out, None, is the task nearest the text)."""
        return self.decide(texts, plain, lam, budget, tasks).names

    def scores(self, texts: Sequence[str], tasks: Sequence[str | None] | None = None) -> np.ndarray:
        """Every LLM's predicted correctness for each text ([n, M], in ``names`` order)."""
        return self.decide(texts, tasks=tasks).scores
