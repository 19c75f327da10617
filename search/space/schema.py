"""The search-space schema: a YAML document validated into a typed Space, which gives Optuna its
distributions and turns each trial's params into a config.json.

One model type, or a choice of several (``model_type: {choices: [mlp, mf]}``) with a block of
params per type under ``models``: a trial samples the type first, then only its type's params
(named ``<type>.<param>`` in the study), so the study records each param with its distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import Field, ValidationError, field_validator, model_validator

from router_models import get_model_class, list_models, model_params
from router_models.model_factory import unknown_key_message
from search.data.options import ENCODER_PARAM
from search.limits import (
    MAX_CONCURRENT,
    MAX_ENSEMBLE,
    MAX_PACK,
    MAX_SAMPLES,
    MAX_TIME_BUDGET_S,
    SEED_MAX,
)
from search.metrics.direction import ARCHITECTURE_METRICS, METRIC_MODES
from search.space.data_spec import DataSpec
from search.space.params import (
    Choice,
    CompactHidden,
    Param,
    Strict,
    block_distributions,
    block_values,
    check_param_values,
    max_value,
    parse_param,
)
from search.train_config import TRAIN_DEFAULTS

TRAIN_PARAMS = set(TRAIN_DEFAULTS)  # lr, weight_decay, batch_size, epochs
AT = "@"  # marks a message that carries its own key path below the current one


def searchable_models() -> list[str]:
    """Registered model types a search can train (an ensemble is assembled, not searched)."""
    return [m for m in list_models() if get_model_class(m).searchable]


def error_text(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return str(err["msg"]).removeprefix("Value error, ")


def _parse_block(where: str, v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    out = {}
    for name, p in v.items():
        try:
            out[name] = parse_param(name, p)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join([where, str(name), *(str(x) for x in err["loc"])]).lstrip(".")
            raise ValueError(f"{AT}{path}: {error_text(err)}") from exc
    return out


class SamplerSpec(Strict):
    """``tpe`` (multi-objective TPE when the search has several objectives), ``random``, or
    ``nsga2`` (a genetic search over Pareto fronts: ``population_size`` trials per generation)."""

    type: Literal["tpe", "random", "nsga2"] = "tpe"
    n_startup_trials: int = Field(8, ge=0, le=MAX_SAMPLES)
    multivariate: bool = True
    constant_liar: bool = True
    population_size: int = Field(20, ge=2, le=MAX_SAMPLES)


class PrunerSpec(Strict):
    type: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(4, ge=0, le=MAX_SAMPLES)
    n_warmup_steps: int = Field(2, ge=0, le=MAX_SAMPLES)
    interval_steps: int = Field(1, ge=1, le=MAX_SAMPLES)
    percentile: float = Field(50.0, ge=0, le=100)
    # epochs of the first rung: 0 would be a rung before any training
    min_resource: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | Literal["auto"] = "auto"
    reduction_factor: int = Field(3, ge=2, le=1000)
    min_early_stopping_rate: int = Field(0, ge=0, le=100)
    # in a space over several model types, judge a trial against its own type only, so a family
    # that learns slowly in its first epochs is not pruned away by a fast one
    per_model_type: bool = True


class FidelitySpec(Strict):
    """What a rung's step counts: ``epochs`` (every epoch on all train questions) or ``data``
    (early epochs on seeded, nested subsets: ``min_fraction`` of the questions at epoch 1,
    growing geometrically to all of them at ``full_epoch``; ``auto``: the pruner's last rung
    within the epochs, or half the epochs for a pruner without rungs)."""

    resource: Literal["epochs", "data"] = "epochs"
    min_fraction: float = Field(0.25, gt=0, le=1, allow_inf_nan=False)
    full_epoch: Annotated[int, Field(ge=1, le=MAX_SAMPLES)] | Literal["auto"] = "auto"


class EnsembleSpec(Strict):
    """Greedy ensemble selection after the run: ``size`` members at most (with repetition;
    0 turns it off), chosen from the best ``candidates`` completed trials (kept while the run
    goes)."""

    size: int = Field(8, ge=0, le=MAX_ENSEMBLE)
    candidates: int = Field(16, ge=1, le=MAX_ENSEMBLE)


class SearchSpec(Strict):
    num_samples: int = Field(24, ge=1, le=MAX_SAMPLES)
    # one metric, or several (a multi-objective search for their Pareto front)
    metric: str | list[str] = "val_auc"
    mode: Literal["min", "max"] | list[Literal["min", "max"]] | None = None
    seed: int = Field(0, ge=0, le=SEED_MAX)
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    max_concurrent_trials: int | None = Field(None, ge=1, le=MAX_CONCURRENT)
    time_budget_s: float | None = Field(None, gt=0, le=MAX_TIME_BUDGET_S)
    # Optuna trials trained as one fused model per Ray Tune trial; "auto" picks per device.
    pack_size: int | Literal["auto"] = "auto"
    ensemble: EnsembleSpec = EnsembleSpec()
    # mean cost per query the exported routers may spend (data with costs): sets their lambda
    budget: float | None = Field(None, gt=0, allow_inf_nan=False)
    # the same command and seed give the same search at any concurrency (driver/ordering.py)
    reproducible: bool = True
    # fill the slots a running pack's pruned, failed or finished members free with new trials
    # (auto: on for GPU packs of more than one when the search need not be reproducible)
    refill: bool | Literal["auto"] = "auto"
    fidelity: FidelitySpec = FidelitySpec()

    @model_validator(mode="after")
    def _refill_needs_timing(self) -> SearchSpec:
        if self.refill is True and self.reproducible:
            raise ValueError(
                f"{AT}refill: true needs search.reproducible: false (a freed slot is "
                "refilled when it frees, which depends on timing)"
            )
        return self

    @field_validator("pack_size")
    @classmethod
    def _pack_size(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= MAX_PACK:
            raise ValueError(f"must be an integer from 1 to {MAX_PACK} or auto, got {v}")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | list[str]) -> str | list[str]:
        names = [v] if isinstance(v, str) else v
        if not names:
            raise ValueError("give at least one metric")
        for name in names:
            if name not in METRIC_MODES:
                raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRIC_MODES)}")
        if len(set(names)) < len(names):
            raise ValueError(f"a metric is named twice: {names}")
        if all(name in ARCHITECTURE_METRICS for name in names):
            trained = ", ".join(m for m in METRIC_MODES if m not in ARCHITECTURE_METRICS)
            raise ValueError(
                f"{', '.join(names)} describe the router, not its training: add a metric that "
                f"training changes (one of {trained})"
            )
        return v

    @model_validator(mode="after")
    def _objectives(self) -> SearchSpec:
        n = len(self.objectives)
        if isinstance(self.mode, list) and len(self.mode) != n:
            raise ValueError(f"{AT}mode: give one mode per metric ({n}), got {len(self.mode)}: {self.mode}")
        if isinstance(self.mode, str) and n > 1:
            raise ValueError(f"{AT}mode: give one mode per metric, a list of {n}, got {self.mode!r}")
        if n > 1 and self.pruner.type == "hyperband":
            raise ValueError(
                f"{AT}pruner.type: hyperband judges one objective; a search over several metrics "
                "prunes with median, percentile, successive_halving or none"
            )
        return self

    @property
    def objectives(self) -> tuple[str, ...]:
        """The metrics the study optimizes, in order (one for a single-objective search)."""
        return (self.metric,) if isinstance(self.metric, str) else tuple(self.metric)

    @property
    def directions(self) -> tuple[str, ...]:
        """``min`` or ``max`` per objective."""
        modes = self.mode if isinstance(self.mode, list) else [self.mode] * len(self.objectives)
        return tuple(m or METRIC_MODES[name] for name, m in zip(self.objectives, modes))

    @property
    def multi(self) -> bool:
        """Whether the study has several objectives (a Pareto front, no single best)."""
        return len(self.objectives) > 1

    @property
    def primary(self) -> str:
        """The metric that picks each trial's best epoch and orders one-line summaries: the
        first objective that training changes."""
        return next(m for m in self.objectives if m not in ARCHITECTURE_METRICS)

    @property
    def objective_text(self) -> str:
        """``metric val_auc (max)``, or ``objectives val_route_acc (max), param_count (min)``."""
        named = ", ".join(f"{m} ({d})" for m, d in zip(self.objectives, self.directions))
        return f"{'objectives' if self.multi else 'metric'} {named}"

    @property
    def direction(self) -> str:
        """The direction of :attr:`primary`."""
        return self.directions[self.objectives.index(self.primary)]


class Resources(Strict):
    """CPUs and GPU share per trial; leave ``gpu`` out for CPU-only trials."""

    cpu: float = Field(1.0, gt=0, le=100_000, allow_inf_nan=False)
    gpu: Annotated[float, Field(gt=0, le=1)] | None = None


class Space(Strict):
    model_type: str | Choice
    params: dict[str, Param | CompactHidden] = Field(default_factory=dict)
    models: dict[str, dict[str, Param | CompactHidden]] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    data: DataSpec = DataSpec()
    export: str = "config.json"
    name: str = "space"

    @field_validator("model_type", mode="before")
    @classmethod
    def _model_type(cls, v: Any) -> Any:
        valid = searchable_models()
        if isinstance(v, dict):
            choice = Choice.model_validate(v)
            bad = [c for c in choice.choices if c not in valid]
            if bad:
                raise ValueError(f"unknown model_type {bad[0]!r} in choices; searchable: {', '.join(valid)}")
            if len(set(choice.choices)) != len(choice.choices):
                raise ValueError(f"choices repeat a model type: {choice.choices}")
            return choice
        if v not in valid:
            raise ValueError(f"unknown model_type {v!r}; searchable: {', '.join(valid)}")
        return v

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, v: Any) -> Any:
        return _parse_block("", v)

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        return {
            t: _parse_block(f"models.{t}", block) if isinstance(block, dict) else block
            for t, block in v.items()
        }

    @model_validator(mode="after")
    def _check_values(self) -> Space:
        for t in self.models:
            if t not in self.types:
                raise ValueError(
                    f"{AT}models.{t}: not a model type of this space; model_type: {', '.join(self.types)}"
                )
        for t in self.types:
            if "hidden_dims" not in self.params and "hidden_dims" not in self.models.get(t, {}):
                where = f"models.{t}.hidden_dims" if self.conditional else "params.hidden_dims"
                raise ValueError(f"{where} is required")
        for t in self.types:
            valid = [k for k in model_params(t) if k != "output_dim"] + list(TRAIN_DEFAULTS)
            shared = f" for {t} (params are shared by every type; put it under models.<type>)"
            blocks = [
                ("params", self.params, shared if self.conditional else ""),
                (f"models.{t}", self.models.get(t, {}), ""),
            ]
            for where, block, note in blocks:
                for name in block:
                    if name not in valid:
                        message = unknown_key_message(name, valid).replace("; valid", f"{note}; valid", 1)
                        raise ValueError(f"{AT}{where}.{name}: {message}")
        for name, p in self.params.items():
            check_param_values(name, p)
        for t, block in self.models.items():
            for name, p in block.items():
                if name in self.params:
                    raise ValueError(f"{AT}models.{t}.{name}: also set in params; set it in one place")
                try:
                    check_param_values(name, p)
                except ValueError as exc:
                    raise ValueError(f"{AT}models.{t}.{exc}") from exc
        return self

    # -- the types and their params -----------------------------------------------------------
    @property
    def conditional(self) -> bool:
        """Whether the model type itself is searched."""
        return isinstance(self.model_type, Choice)

    @property
    def types(self) -> list[str]:
        return list(self.model_type.choices) if isinstance(self.model_type, Choice) else [self.model_type]

    def _prefix(self, model_type: str) -> str:
        return f"{model_type}." if self.conditional else ""

    # -- to Optuna and back -----------------------------------------------------------------
    def distributions(self, model_type: str | None = None) -> dict[str, BaseDistribution]:
        """The Optuna distributions of every searched (non-fixed) parameter of ``model_type``
        (the space's only type when it has one): ``model_type`` itself when it is searched,
        the shared params, then the type's own as ``<type>.<param>``."""
        t = model_type or self.types[0]
        out: dict[str, BaseDistribution] = {}
        if len(self.data.encoders) > 1:  # data: {encoder: {choices: [...]}}
            out[ENCODER_PARAM] = CategoricalDistribution(self.data.encoders)
        if self.conditional and len(self.types) > 1:
            out["model_type"] = CategoricalDistribution(self.types)
        out.update(block_distributions(self.params))
        out.update(block_distributions(self.models.get(t, {}), self._prefix(t)))
        return out

    def suggest(self, trial: optuna.trial.Trial) -> dict[str, Any]:
        """Sample one trial's params through the trial (define-by-run): the model type first,
        then only that type's params. Values enqueued for the trial are taken as given."""
        t = self.types[0]
        if self.conditional and len(self.types) > 1:
            t = trial.suggest_categorical("model_type", self.types)
        for name, d in self.distributions(t).items():
            if name == "model_type":
                continue
            if isinstance(d, FloatDistribution):
                trial.suggest_float(name, d.low, d.high, log=d.log, step=d.step)
            elif isinstance(d, IntDistribution):
                trial.suggest_int(name, d.low, d.high, log=d.log, step=d.step)
            elif isinstance(d, CategoricalDistribution):
                trial.suggest_categorical(name, d.choices)
        return dict(trial.params)

    def model_type_of(self, sampled: Mapping[str, Any]) -> str:
        t = sampled.get("model_type", self.types[0])
        return str(t)

    def trial_config(self, sampled: Mapping[str, Any]) -> dict[str, Any]:
        """The config.json dict for one trial's sampled params (fixed values filled in)."""
        t = self.model_type_of(sampled)
        values = block_values(self.params, sampled)
        values.update(block_values(self.models.get(t, {}), sampled, self._prefix(t)))
        model_config = {k: v for k, v in values.items() if k not in TRAIN_PARAMS}
        train_config = {k: values.get(k, TRAIN_DEFAULTS[k]) for k in TRAIN_DEFAULTS}
        pipeline: dict[str, Any] = {
            "model_type": t,
            "model_config": model_config,
            "train_config": train_config,
        }
        if len(self.data.encoders) > 1:
            pipeline[ENCODER_PARAM] = str(sampled.get(ENCODER_PARAM, self.data.encoders[0]))
        return {"pipeline_config": pipeline}

    def encoder_of(self, sampled: Mapping[str, Any]) -> str:
        """The encoder a trial's params chose: a choice, or "" when the space has none to choose."""
        if len(self.data.encoders) < 2:
            return ""
        return str(sampled.get(ENCODER_PARAM, self.data.encoders[0]))

    @property
    def max_epochs(self) -> int:
        blocks = [self.params, *self.models.values()]
        epochs = [max_value(b["epochs"]) for b in blocks if "epochs" in b] or [TRAIN_DEFAULTS["epochs"]]
        return int(max(epochs))

    def describe(self) -> str:
        """The resolved space as YAML (defaults filled in) plus its Optuna distributions."""
        dumped = self.model_dump(mode="json")
        dists = {t: {k: repr(v) for k, v in self.distributions(t).items()} for t in self.types}
        shown: Any = dists if self.conditional else dists[self.types[0]]
        return yaml.safe_dump({"space": dumped, "optuna_distributions": shown}, sort_keys=False, width=100)
