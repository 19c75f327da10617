"""The search-space schema: a YAML document validated into a typed Space, which gives Optuna its
distributions and turns each trial's params into a config.json.

One model type, or a choice of several (``model_type: {choices: [mlp, mf]}``) with a block of
params per type under ``models``: a trial samples the type first, then only its type's params
(named ``<type>.<param>`` in the study), so the study records each param with its distribution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

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
from search.data.data_options import ENCODER_PARAM
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
from search.space.search_spec import AT, SearchSpec
from search.trial.train_config import TRAIN_DEFAULTS

TRAIN_PARAMS = set(TRAIN_DEFAULTS)  # lr, weight_decay, batch_size, epochs


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
            needs = get_model_class(t).requires_hidden
            if needs and "hidden_dims" not in self.params and "hidden_dims" not in self.models.get(t, {}):
                where = f"models.{t}.hidden_dims" if self.conditional else "params.hidden_dims"
                raise ValueError(f"{where} is required")
        for t in self.types:
            cls = get_model_class(t)
            # what the data decides (a task prior's tasks, a kNN router's references) is no param;
            # nor are hidden layers of a model without any (shared params skip them)
            skip = {"output_dim", *cls.data_keys} | (set() if cls.requires_hidden else {"hidden_dims"})
            valid = [k for k in model_params(t) if k not in skip] + list(TRAIN_DEFAULTS)
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

    def for_data(self, has_tasks: bool, source: str = "the data") -> tuple[Space, str | None]:
        """This space for data with or without tasks: without, a ``prior`` choice loses
        ``task`` (returned with a note saying so), and a ``prior`` that can only be ``task``
        is an error.

        Raises:
            ValueError: ``prior`` is fixed to ``task`` (or a choice of it alone) and the data has
                no tasks; the message names the key path.
        """
        if has_tasks:
            return self, None
        update: dict[str, Any] = {}
        dropped = []
        for where, block in [("params", self.params), *((f"models.{t}", b) for t, b in self.models.items())]:
            p = block.get("prior")
            if p is None:
                continue
            values = list(p.choices) if isinstance(p, Choice) else [p]
            if "task" not in values:
                continue
            left = [v for v in values if v != "task"]
            if not left:
                raise ValueError(
                    f"{AT}{where}.prior: 'task' needs data with tasks; {source} has none (give --tasks FILE "
                    "or --task-column, or use prior: cluster)"
                )
            new = {**block, "prior": Choice(choices=left) if len(left) > 1 else left[0]}
            dropped.append(f"{where}.prior")
            if where == "params":
                update["params"] = new
            else:
                update.setdefault("models", dict(self.models))[where.removeprefix("models.")] = new
        if not update:
            return self, None
        note = f"{source} has no tasks, so {', '.join(dropped)} leaves out 'task'"
        return self.model_copy(update=update), note

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
