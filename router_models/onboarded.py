"""A trained router with LLMs added or dropped after training ("onboarded").

A new LLM is onboarded from a few scored questions without retraining anything: its
correctness logit is a linear readout of the trained router's own predictions for the LLMs it
knows,

    logit_new(x) = c + sum_m v_m * clip(logit_m(x))

fitted by ridge-penalized logistic regression on the scored questions (:func:`fit_readout`).
The known LLMs' predictions are the representation every model type shares (a learned router's
head reads its hidden layer; kNN and group means have none), and they carry what predicts a new
LLM best: how hard a question is and which LLMs answer it (the prior of :func:`fit_readout`: a
new LLM finds questions as hard as the known LLMs do on average, at its own level).

The trained router is kept whole as ``base`` and runs exactly as before, so every known LLM's
logit is the one it was, to the last bit; the new LLMs' logits are appended. ``keep`` lists the
outputs the router shows, in order (base outputs first, then added ones), which is how an LLM
is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from router_models.base_model import BaseModel, check_positive_int
from router_models.errors import ConfigError
from router_models.model_factory import create_model, read_pipeline_config, register_model

LOGIT_CLIP = 15.0  # a base logit's reach into a readout (a fitted router can say +-inf-ish)
RIDGES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 1e5)  # tried by cross-validation
SLACK = 1.0  # nats of held-out log-likelihood a larger ridge may give up (the simpler readout)
FOLDS = 5


@register_model("onboarded")
class OnboardedModel(BaseModel):
    """A trained router (``base``) with readouts for added LLMs and a choice of outputs.

    Built by :func:`onboard` and :func:`drop`, never searched.

    Args:
        input_dim: Embedding width (the base's).
        output_dim: The outputs shown: ``len(keep)``.
        base: The trained router's config (``{"model_type", "model_config"}``), any type but
            ``onboarded``.
        base_outputs: The base's LLMs, >= 1.
        added: LLMs added after training, >= 0 (one readout each).
        keep: The outputs shown, in order: indices into the base's outputs then the added ones,
            each once.

    Raises:
        ConfigError: On a bad base, counts, or ``keep`` (the message shows the bad value).
    """

    searchable = False
    requires_hidden = False
    readout_weight: torch.Tensor
    readout_bias: torch.Tensor

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        base: Mapping[str, Any] | None = None,
        base_outputs: int = 1,
        added: int = 0,
        keep: Sequence[int] | None = None,
    ) -> None:
        check_positive_int("base_outputs", base_outputs)
        if isinstance(added, bool) or not isinstance(added, int) or added < 0:
            raise ConfigError(f"added must be an integer >= 0, got {added!r}")
        total = base_outputs + added
        keep = list(range(total)) if keep is None else keep
        if (
            isinstance(keep, (str, bytes))
            or not isinstance(keep, Sequence)
            or not keep
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < total for i in keep)
            or len(set(keep)) != len(keep)
        ):
            raise ConfigError(f"keep must list distinct outputs in [0, {total - 1}], got {keep!r}")
        if output_dim != len(keep):
            raise ConfigError(f"output_dim is {output_dim} but keep shows {len(keep)} outputs")
        if base is None:
            raise ConfigError("base: give the trained router's config")
        pipeline = read_pipeline_config(base)
        if pipeline["model_type"] == "onboarded":
            raise ConfigError(
                "base: an onboarded router's base is the trained router, not another onboarded one"
            )
        config = {
            "model_type": pipeline["model_type"],
            "model_config": dict(pipeline.get("model_config", {})),
        }
        inner = create_model(config, input_dim, base_outputs)
        super().__init__(input_dim=input_dim, hidden_dims=inner.hidden_dims, output_dim=output_dim)
        self.base = inner
        self.base_config = config
        self.base_outputs = int(base_outputs)
        self.added = int(added)
        self.keep = [int(i) for i in keep]
        self.register_buffer("readout_weight", torch.zeros(added, base_outputs))
        self.register_buffer("readout_bias", torch.zeros(added))
        self.register_buffer("keep_index", torch.tensor(self.keep, dtype=torch.long))

    @property
    def hidden_layers(self) -> torch.nn.ModuleList:  # type: ignore[override]
        """The base's hidden layers (what ``get_embeddings`` reads)."""
        return self.base.hidden_layers

    def set_input_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Kept the identity: the base standardizes its own input."""

    def __call__(self, x: torch.Tensor, tasks: torch.Tensor | None = None) -> Any:
        """The base's logits, unchanged, then the added LLMs' readouts; the ``keep`` columns."""
        known = self.base(x, tasks)
        if self.added:
            clipped = known.float().clamp(-LOGIT_CLIP, LOGIT_CLIP)
            # one product per added LLM: its logit never depends on how many others were added
            # (a matrix product's blocking would), so onboarding more leaves it to the bit
            new = [clipped @ self.readout_weight[i] + self.readout_bias[i] for i in range(self.added)]
            known = torch.cat([known, torch.stack(new, dim=-1).to(known.dtype)], dim=-1)
        if self.keep == list(range(self.base_outputs)):
            return known
        return known.index_select(-1, self.keep_index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)

    def model_config(self) -> dict[str, Any]:
        return {
            "base": {"model_type": self.base_config["model_type"], "model_config": self.base.model_config()},
            "base_outputs": self.base_outputs,
            "added": self.added,
            "keep": list(self.keep),
            "output_dim": self.output_dim,
        }

    def get_model_info(self) -> dict[str, Any]:
        info = super().get_model_info()
        info.update(base=self.base_config["model_type"], added=self.added, keep=list(self.keep))
        for key in ("dropout", "activation"):
            info.pop(key, None)
        return info


@dataclass(frozen=True)
class Readout:
    """One added LLM's readout: ``logit = bias + weight . clip(base logits)``; fitted on
    ``questions`` scored questions with ridge ``ridge`` (chosen by cross-validation)."""

    weight: torch.Tensor  # [base_outputs]
    bias: float
    questions: int
    ridge: float


def _newton(
    Z: torch.Tensor, y: torch.Tensor, penalty: torch.Tensor, offset: torch.Tensor, iters: int = 30
) -> torch.Tensor:
    """Ridge-penalized logistic regression by Newton's method (float64, deterministic): the
    coefficients ``theta`` of ``[1, Z]`` minimizing sum BCE(y, sigmoid(offset + [1, Z] theta))
    + theta' diag(penalty) theta / 2. Scores in [0, 1] (graded) are soft labels."""
    A = torch.cat([torch.ones(len(Z), 1, dtype=Z.dtype), Z], dim=1)
    theta = torch.zeros(A.shape[1], dtype=Z.dtype)
    eye = torch.eye(A.shape[1], dtype=Z.dtype) * 1e-9
    for _ in range(iters):
        p = torch.sigmoid(offset + A @ theta)
        grad = A.T @ (p - y) + penalty * theta
        hess = (A * (p * (1 - p)).unsqueeze(1)).T @ A + torch.diag(penalty) + eye
        step = torch.linalg.solve(hess, grad)
        theta = theta - step
        if float(step.abs().max()) < 1e-10:
            break
    return theta


SLOPES = (3.0, 0.01)  # how firmly a new LLM follows the known LLMs' mean logit with slope 1
LEVEL_PENALTY = 2.0  # how firmly its level starts at theirs (about 8 pseudo-questions)


def _fit(F: torch.Tensor, y: torch.Tensor, ridge: float, slope: float) -> tuple[torch.Tensor, float]:
    """``(weight [M], bias)`` over raw clipped base logits ``F [K, M]``:

        logit = b + g + a (g - mean g) + sum_m w_m (F_m - mu_m) / sd_m,   g = mean_m F_m

    The prior is a new LLM that finds questions as hard as the known LLMs do on average: its
    level's departure ``b`` from theirs is penalized by :data:`LEVEL_PENALTY`, the slope's
    departure ``a`` from 1 by ``slope`` and each known LLM's own weight ``w_m`` by ``ridge``, so
    with few questions the readout stays calibrated (a new LLM is not routed to on the word of
    a handful of answers) and each weight is earned by the data.
    The standardization is folded in: a readout is one matrix row and a bias."""
    m = F.shape[1]
    mu, sd = F.mean(0), F.std(0, unbiased=False).clamp_min(1e-6)
    g = F.mean(1)
    g_mu = g.mean()
    D = torch.cat([(g - g_mu).unsqueeze(1), (F - mu) / sd], dim=1)
    penalty = torch.full((D.shape[1] + 1,), float(ridge), dtype=F.dtype)
    penalty[0], penalty[1] = LEVEL_PENALTY, slope
    theta = _newton(D, y, penalty, offset=g)
    b, a, w = theta[0], theta[1], theta[2:]
    weight = (1 + a) / m + w / sd
    bias = b - a * g_mu - (w * mu / sd).sum()
    return weight, float(bias)


def _loglik(F: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, bias: float) -> float:
    z = F @ weight + bias
    return float((y * torch.nn.functional.logsigmoid(z) + (1 - y) * torch.nn.functional.logsigmoid(-z)).sum())


def fit_readout(logits: torch.Tensor, scores: torch.Tensor) -> Readout:
    """One new LLM's readout from the base's logits on its scored questions.

    Args:
        logits: ``[K, M]`` the base router's logits on the K questions.
        scores: ``[K]`` the new LLM's scores there, in [0, 1].

    The ridge and the slope's penalty (:data:`SLOPES`) are the simplest pair (the firm slope
    first, then the largest ridge) whose held-out log-likelihood over :data:`FOLDS`
    interleaved folds is within :data:`SLACK` of the best pair's: the simpler readout unless
    the data says otherwise.

    Raises:
        ValueError: Fewer than 2 questions, or scores that do not line up.
    """
    if logits.ndim != 2 or scores.shape != (logits.shape[0],) or logits.shape[0] < 2:
        raise ValueError(
            f"need [K, M] logits and [K] scores with K >= 2, got {tuple(logits.shape)}, {tuple(scores.shape)}"
        )
    F = logits.double().clamp(-LOGIT_CLIP, LOGIT_CLIP)
    y = scores.double()
    k = len(y)
    folds = torch.arange(k) % min(FOLDS, k)
    # candidates from the simplest (the firm prior, the largest ridge) down
    candidates = [(ridge, slope) for slope in SLOPES for ridge in reversed(RIDGES)]
    held_out: list[float] = []
    for ridge, slope in candidates:
        total = 0.0
        for f in range(int(folds.max()) + 1):
            train, held = folds != f, folds == f
            weight, bias = _fit(F[train], y[train], ridge, slope)
            total += _loglik(F[held], y[held], weight, bias)
        held_out.append(total)
    best = max(held_out)
    chosen, slope = next(c for c, s in zip(candidates, held_out) if s >= best - SLACK)
    weight, bias = _fit(F, y, chosen, slope)
    return Readout(weight.float(), bias, k, chosen)


def _parts(
    model: BaseModel,
) -> tuple[BaseModel, dict[str, Any], int, int, list[int], torch.Tensor, torch.Tensor]:
    """(base, base config, base outputs, added, keep, readout weight, readout bias) of any router."""
    if isinstance(model, OnboardedModel):
        return (
            model.base,
            model.base_config,
            model.base_outputs,
            model.added,
            list(model.keep),
            model.readout_weight.clone(),
            model.readout_bias.clone(),
        )
    config = {"model_type": model.model_type, "model_config": model.model_config()}
    m = model.output_dim
    return model, config, m, 0, list(range(m)), torch.zeros(0, m), torch.zeros(0)


def _assemble(
    base: BaseModel,
    config: dict[str, Any],
    base_outputs: int,
    added: int,
    keep: list[int],
    weight: torch.Tensor,
    bias: torch.Tensor,
) -> OnboardedModel:
    out = OnboardedModel(
        input_dim=base.input_dim,
        output_dim=len(keep),
        base={"model_type": config["model_type"], "model_config": base.model_config()},
        base_outputs=base_outputs,
        added=added,
        keep=keep,
    )
    out.base.load_state_dict(base.state_dict())
    out.readout_weight.copy_(weight)
    out.readout_bias.copy_(bias)
    return out.eval()


@torch.no_grad()
def base_logits(model: BaseModel, X: torch.Tensor, tasks: torch.Tensor | None = None) -> torch.Tensor:
    """The trained router's own logits ``[K, M_base]`` (what a readout reads) for raw embeddings."""
    base = _parts(model)[0]
    was = base.training
    base.eval()
    try:
        return base(X, tasks).float()
    finally:
        base.train(was)


def onboard(model: BaseModel, readouts: Sequence[Readout]) -> OnboardedModel:
    """``model`` with one new LLM per readout, appended after its outputs (every output it had
    is computed as before)."""
    base, config, m, added, keep, weight, bias = _parts(model)
    for r in readouts:
        if r.weight.shape != (m,):
            raise ValueError(f"a readout over {tuple(r.weight.shape)} logits, the base has {m}")
    new_w = torch.stack([r.weight for r in readouts]) if readouts else torch.zeros(0, m)
    new_b = torch.tensor([r.bias for r in readouts], dtype=torch.float32)
    keep = keep + [m + added + i for i in range(len(readouts))]
    return _assemble(
        base, config, m, added + len(readouts), keep, torch.cat([weight, new_w]), torch.cat([bias, new_b])
    )


def drop(model: BaseModel, outputs: Sequence[int]) -> OnboardedModel:
    """``model`` without the outputs at positions ``outputs`` (indices into its current outputs).

    Raises:
        ValueError: A position out of range, or every output dropped.
    """
    base, config, m, added, keep, weight, bias = _parts(model)
    bad = [i for i in outputs if not 0 <= i < len(keep)]
    if bad:
        raise ValueError(f"output {bad[0]} is not one of the router's {len(keep)}")
    kept = [c for i, c in enumerate(keep) if i not in set(outputs)]
    if not kept:
        raise ValueError("dropping every LLM leaves no router")
    return _assemble(base, config, m, added, kept, weight, bias)
