"""Search-space parameters: fixed values, ranges, choices and the compact hidden_dims form, as
Optuna distributions and back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from router_models import ACTIVATIONS, PRIORS
from router_models.knn import WEIGHTINGS
from router_models.prior import MAX_GROUPS
from search.limits import MAX_BATCH, MAX_EPOCHS

FLOAT_PARAMS = {"dropout", "lr", "weight_decay", "noise_std", "prior_strength", "temperature"}
INT_PARAMS = {"num_blocks", "batch_size", "epochs", "clusters", "k"}
INT_PARAM_MAX = {
    "num_blocks": 1000,
    "batch_size": MAX_BATCH,
    "epochs": MAX_EPOCHS,
    "clusters": MAX_GROUPS,
    "k": 100_000,
}
# params that take one of a few names
NAMED_PARAMS = {"prior": PRIORS, "weighting": WEIGHTINGS}
MIN_SHRUNK_WIDTH = 16


class Strict(BaseModel):
    # protected_namespaces: fields such as model_type are ours, not pydantic's (older releases warn)
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


class FloatRange(Strict):
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


class IntRange(Strict):
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


class Choice(Strict):
    choices: list[Any] = Field(min_length=1)


class CompactHidden(Strict):
    """``layers`` x ``width``, optionally halving each layer."""

    layers: int | IntRange | Choice
    width: int | IntRange | Choice
    shrink: bool = True


# Fixed values keep the type YAML gave them (strict: a 5 stays an int, a true a bool, 1.0 a
# float), whatever the union's order and in every pydantic release we support.
Param = FloatRange | IntRange | Choice | StrictBool | StrictInt | StrictFloat | StrictStr | list[Any] | None


def parse_param(name: str, p: Any) -> Any:
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


def distribution(p: Any) -> BaseDistribution | None:
    """The Optuna distribution of a searched param; None for a fixed one."""
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


def fixed(p: Any) -> Any:
    """The value a param takes when nothing was sampled: a range's low, the first choice."""
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


def check_param_values(name: str, p: Any) -> None:
    """Raise ValueError (``name: what``) when a known param can take a bad value."""
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
        elif name in NAMED_PARAMS and v not in NAMED_PARAMS[name]:
            raise ValueError(f"{name}: unknown {v!r}; valid: {', '.join(NAMED_PARAMS[name])}")
        elif name == "group_input" and not isinstance(v, bool):
            raise ValueError(f"group_input: {v!r} must be true or false")
        elif name == "temperature" and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"temperature: {v!r} must be a number > 0")
        elif name in ("lr", "weight_decay", "noise_std", "prior_strength") and not (
            isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 and (v > 0 or name != "lr")
        ):
            raise ValueError(f"{name}: {v!r} must be a number {'> 0' if name == 'lr' else '>= 0'}")
        elif name in INT_PARAMS and (
            isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= INT_PARAM_MAX[name]
        ):
            raise ValueError(f"{name}: {v!r} must be an integer from 1 to {INT_PARAM_MAX[name]:,}")


def block_distributions(block: Mapping[str, Any], prefix: str = "") -> dict[str, BaseDistribution]:
    """The distributions of a block's searched params, named ``prefix + name``."""
    out: dict[str, BaseDistribution] = {}
    for name, p in block.items():
        if isinstance(p, CompactHidden):
            for part in ("layers", "width"):
                d = distribution(getattr(p, part))
                if d is not None:
                    out[f"{prefix}hidden_{part}"] = d
        else:
            d = distribution(p)
            if d is not None:
                out[prefix + name] = d
    return out


def block_values(block: Mapping[str, Any], sampled: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A block's resolved values for one trial: sampled where sampled, else fixed."""
    values: dict[str, Any] = {}
    for name, p in block.items():
        if isinstance(p, CompactHidden):
            layers = sampled.get(f"{prefix}hidden_layers", fixed(p.layers))
            width = sampled.get(f"{prefix}hidden_width", fixed(p.width))
            dims = [int(width)]
            for _ in range(int(layers) - 1):
                dims.append(max(MIN_SHRUNK_WIDTH, dims[-1] // 2) if p.shrink else dims[-1])
            values[name] = dims
        else:
            key = prefix + name
            values[name] = _decode(p, sampled[key]) if key in sampled else fixed(p)
    return values


def max_value(p: Any) -> Any:
    """The largest value a param can take."""
    if isinstance(p, (FloatRange, IntRange)):
        return p.high
    if isinstance(p, Choice):
        return max(p.choices)
    return p
