"""Search spaces: YAML -> typed, validated Space -> Optuna distributions -> trial configs.

A parameter is a fixed value, ``{low, high[, log]}`` (float), ``{low, high[, step][, log]}``
(int: both bounds inclusive), or ``{choices: [...]}``. ``hidden_dims`` is also a choice of
lists or the compact ``{layers, width, shrink}`` form: ``layers`` hidden layers, the first
``width`` wide, each next one half the previous (``shrink: true``, never below 16) or the same.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna
import yaml
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from router_models import ACTIVATIONS, list_models
from search.data.synthetic import SyntheticSpec
from search.errors import SpaceError
from search.trial.train import METRIC_MODES, TRAIN_DEFAULTS

FLOAT_PARAMS = {"dropout", "lr", "weight_decay"}
INT_PARAMS = {"num_blocks", "batch_size", "epochs"}
TRAIN_PARAMS = set(TRAIN_DEFAULTS)  # lr, weight_decay, batch_size, epochs
MIN_SHRUNK_WIDTH = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FloatRange(_Strict):
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is greater than high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log scale needs low > 0, got {self.low}")
        return self


class IntRange(_Strict):
    """Integers from low to high, both inclusive, every ``step``."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is greater than high {self.high}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError("log scale needs low >= 1 and step 1")
        return self


class Choice(_Strict):
    choices: list[Any] = Field(min_length=1)


class CompactHidden(_Strict):
    """``layers`` x ``width``, optionally halving each layer."""

    layers: int | IntRange | Choice
    width: int | IntRange | Choice
    shrink: bool = True


Param = FloatRange | IntRange | Choice | float | int | str | bool | list[Any] | None


class SamplerSpec(_Strict):
    type: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = Field(8, ge=0)
    multivariate: bool = True
    constant_liar: bool = True


class PrunerSpec(_Strict):
    type: Literal["median", "percentile", "successive_halving", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(4, ge=0)
    n_warmup_steps: int = Field(2, ge=0)
    interval_steps: int = Field(1, ge=1)
    percentile: float = Field(50.0, ge=0, le=100)
    min_resource: int | Literal["auto"] = "auto"
    reduction_factor: int = Field(3, ge=2)
    min_early_stopping_rate: int = Field(0, ge=0)


class SearchSpec(_Strict):
    num_samples: int = Field(24, ge=1)
    metric: str = "val_auc"
    mode: Literal["min", "max"] | None = None
    seed: int = 0
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    max_concurrent_trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    # Optuna trials trained as one fused model per Ray Tune trial; "auto" picks per device.
    pack_size: int | Literal["auto"] = "auto"

    @field_validator("pack_size")
    @classmethod
    def _pack_size(cls, v: int | str) -> int | str:
        if isinstance(v, int) and v < 1:
            raise ValueError(f"must be an integer >= 1 or auto, got {v}")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRIC_MODES:
            raise ValueError(f"unknown metric {v!r}; valid: {', '.join(METRIC_MODES)}")
        return v

    @property
    def direction(self) -> str:
        return self.mode or METRIC_MODES[self.metric]


class Resources(_Strict):
    """CPUs and GPU share per trial; leave ``gpu`` out for CPU-only trials."""

    cpu: float = Field(1.0, gt=0)
    gpu: Annotated[float, Field(gt=0, le=1)] | None = None


class DataSpec(_Strict):
    """Where the data comes from; ``embedding_dim``, when given, must match the data."""

    path: str | None = None
    synthetic: dict[str, Any] | None = None  # SyntheticSpec's options
    embedding_dim: int | None = Field(None, ge=1)

    @field_validator("synthetic")
    @classmethod
    def _synthetic(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        valid = [f.name for f in dataclasses.fields(SyntheticSpec)]
        unknown = sorted(set(v) - set(valid))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid: {', '.join(valid)}")
        try:
            SyntheticSpec(**v)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _one(self) -> DataSpec:
        if self.path and self.synthetic is not None:
            raise ValueError("give either path or synthetic, not both")
        return self

    def source(self) -> str:
        if self.path:
            return self.path
        return SyntheticSpec(**(self.synthetic or {})).source()


class Space(_Strict):
    model_type: str
    params: dict[str, Param | CompactHidden] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    resources: Resources = Resources()
    data: DataSpec = DataSpec()
    export: str = "config.json"
    name: str = "space"

    @field_validator("model_type")
    @classmethod
    def _model_type(cls, v: str) -> str:
        if v not in list_models():
            raise ValueError(f"unknown model_type {v!r}; registered: {', '.join(list_models())}")
        return v

    @field_validator("params", mode="before")
    @classmethod
    def _params(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out = {}
        for name, p in v.items():
            try:
                out[name] = _parse_param(name, p)
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join([str(name), *(str(x) for x in err["loc"])])
                raise ValueError(f"{_AT}{where}: {_message(err)}") from None
        return out

    @model_validator(mode="after")
    def _check_values(self) -> Space:
        if "hidden_dims" not in self.params:
            raise ValueError("params.hidden_dims is required")
        for name, p in self.params.items():
            _check_param_values(name, p)
        return self

    # -- to Optuna and back -----------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distributions of every searched (non-fixed) parameter."""
        out: dict[str, BaseDistribution] = {}
        for name, p in self.params.items():
            if isinstance(p, CompactHidden):
                for part in ("layers", "width"):
                    d = _distribution(getattr(p, part))
                    if d is not None:
                        out[f"hidden_{part}"] = d
            else:
                d = _distribution(p)
                if d is not None:
                    out[name] = d
        return out

    def trial_config(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """The config.json dict for one trial's sampled params (fixed values filled in)."""
        values: dict[str, Any] = {}
        for name, p in self.params.items():
            if isinstance(p, CompactHidden):
                layers = sampled.get("hidden_layers", _fixed(p.layers))
                width = sampled.get("hidden_width", _fixed(p.width))
                dims = [int(width)]
                for _ in range(int(layers) - 1):
                    dims.append(max(MIN_SHRUNK_WIDTH, dims[-1] // 2) if p.shrink else dims[-1])
                values[name] = dims
            else:
                values[name] = _decode(p, sampled[name]) if name in sampled else _fixed(p)
        model_config = {k: v for k, v in values.items() if k not in TRAIN_PARAMS}
        train_config = {k: values.get(k, TRAIN_DEFAULTS[k]) for k in TRAIN_DEFAULTS}
        return {
            "pipeline_config": {
                "model_type": self.model_type,
                "model_config": model_config,
                "train_config": train_config,
            }
        }

    @property
    def max_epochs(self) -> int:
        p = self.params.get("epochs", TRAIN_DEFAULTS["epochs"])
        if isinstance(p, IntRange):
            return p.high
        if isinstance(p, Choice):
            return max(p.choices)
        return int(p)

    def describe(self) -> str:
        """The resolved space as YAML (defaults filled in) plus its Optuna distributions."""
        dumped = self.model_dump(mode="json")
        dists = {k: repr(v) for k, v in self.distributions().items()}
        return yaml.safe_dump({"space": dumped, "optuna_distributions": dists}, sort_keys=False, width=100)


def _parse_param(name: str, p: Any) -> Any:
    """Pick the param type by name and shape, so errors speak of the right form."""
    if isinstance(p, dict):
        if "choices" in p:
            return Choice.model_validate(p)
        if name == "hidden_dims" and ("layers" in p or "width" in p):
            return CompactHidden.model_validate(p)
        is_int = name in INT_PARAMS or (
            name not in FLOAT_PARAMS
            and all(isinstance(p.get(k), int) and not isinstance(p.get(k), bool) for k in ("low", "high"))
        )
        if "step" in p or is_int:
            return IntRange.model_validate(p)
        return FloatRange.model_validate(p)
    return p


def _distribution(p: Any) -> BaseDistribution | None:
    if isinstance(p, FloatRange):
        return FloatDistribution(p.low, p.high, log=p.log) if p.low < p.high else None
    if isinstance(p, IntRange):
        if p.low == p.high:
            return None
        high = p.low + (p.high - p.low) // p.step * p.step
        return IntDistribution(p.low, high, log=p.log, step=p.step)
    if isinstance(p, Choice):
        if len(p.choices) == 1:
            return None
        # Storage keeps only scalars: list choices (hidden_dims) travel as JSON text.
        return CategoricalDistribution([_encode(c) for c in p.choices])
    return None


def _encode(choice: Any) -> Any:
    return json.dumps(choice) if isinstance(choice, (list, dict)) else choice


def _decode(p: Any, value: Any) -> Any:
    if isinstance(p, Choice) and isinstance(value, str):
        for c in p.choices:
            if _encode(c) == value:
                return c
    return value


def _fixed(p: Any) -> Any:
    if isinstance(p, (FloatRange, IntRange)):
        return p.low
    if isinstance(p, Choice):
        return p.choices[0]
    return p


def _values(p: Any) -> list[Any]:
    """Representative values to check: bounds of ranges, all choices, the fixed value."""
    if isinstance(p, (FloatRange, IntRange)):
        return [p.low, p.high]
    if isinstance(p, Choice):
        return list(p.choices)
    return [p]


def _check_param_values(name: str, p: Any) -> None:
    if isinstance(p, CompactHidden):
        for part in ("layers", "width"):
            for v in _values(getattr(p, part)):
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise ValueError(f"hidden_dims.{part}: {v!r} must be a positive integer")
        return
    for v in _values(p):
        if name == "hidden_dims":
            if (
                not isinstance(v, list)
                or not v
                or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in v)
            ):
                raise ValueError(f"hidden_dims: {v!r} must be a non-empty list of positive integers")
        elif name == "dropout" and not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ValueError(f"dropout: {v!r} must be in [0, 1) (1 excluded)")
        elif name == "activation" and v not in ACTIVATIONS:
            raise ValueError(f"activation: unknown {v!r}; valid: {', '.join(ACTIVATIONS)}")
        elif name in ("lr", "weight_decay") and not (
            isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 and (v > 0 or name != "lr")
        ):
            raise ValueError(f"{name}: {v!r} must be a number {'> 0' if name == 'lr' else '>= 0'}")
        elif name in INT_PARAMS and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name}: {v!r} must be an integer >= 1")


_AT = "@"  # marks a message that carries its own key path below the current one


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    return str(err["msg"]).removeprefix("Value error, ")


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("function-", "tagged-")))
    # Union types put the branch name in the path; keep the user's keys only.
    loc = ".".join(
        part
        for part in loc.split(".")
        if part
        not in {
            "FloatRange",
            "IntRange",
            "Choice",
            "CompactHidden",
            "float",
            "int",
            "str",
            "bool",
            "list[any]",
            "constrained-float",
            "literal['auto']",
        }
    )
    msg = _message(err)
    if msg.startswith(_AT):
        return f"{loc}.{msg[1:]}" if loc else msg[1:]
    return f"{loc}: {msg}" if loc else msg


def parse_space(raw: Any, where: str = "space", name: str = "space") -> Space:
    """Validate a loaded YAML document into a Space.

    Raises:
        SpaceError: one line naming ``where`` and the key path.
    """
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Space.model_validate({"name": name, **raw})
    except ValidationError as exc:
        raise SpaceError(f"{where}: {_format_error(exc)}") from None


def load_space(path: str | Path) -> Space:
    """Read and validate a space YAML file (``yaml.safe_load``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpaceError(f"{path}: file not found") from None
    except OSError as exc:
        raise SpaceError(f"{path}: not readable ({exc.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpaceError(f"{path}{line}: YAML syntax error: {problem}") from None
    return parse_space(raw, str(path), name=path.stem)


def make_sampler(spec: SamplerSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        n_startup_trials=spec.n_startup_trials,
        multivariate=spec.multivariate,
        constant_liar=spec.constant_liar,
        seed=seed,
    )


def make_pruner(spec: PrunerSpec, max_epochs: int) -> optuna.pruners.BasePruner:
    if spec.type == "median":
        return optuna.pruners.MedianPruner(spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps)
    if spec.type == "percentile":
        return optuna.pruners.PercentilePruner(
            spec.percentile, spec.n_startup_trials, spec.n_warmup_steps, spec.interval_steps
        )
    if spec.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            spec.min_resource, spec.reduction_factor, spec.min_early_stopping_rate
        )
    if spec.type == "hyperband":
        min_resource = 1 if spec.min_resource == "auto" else spec.min_resource
        return optuna.pruners.HyperbandPruner(min_resource, max_epochs, spec.reduction_factor)
    return optuna.pruners.NopPruner()
