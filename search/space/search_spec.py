"""The ``search:`` block of a space: what is optimized (one metric or several, each with its
direction), by which sampler and pruner, how many trials, in packs of how many, and what the run
exports beside the best router (the ensemble, the budget)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from search.limits import MAX_CONCURRENT, MAX_ENSEMBLE, MAX_PACK, MAX_SAMPLES, MAX_TIME_BUDGET_S, SEED_MAX
from search.metrics.direction import ARCHITECTURE_METRICS, METRIC_MODES
from search.space.params import Strict

AT = "@"  # marks a message that carries its own key path below the current one


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
    # the same command and seed give the same search at any concurrency (search/study/ordering.py)
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
        modes = self.mode if isinstance(self.mode, list) else [self.mode] * n
        for i, (name, mode) in enumerate(zip(self.objectives, modes)):
            if mode is not None and mode != METRIC_MODES[name]:
                where = f"mode[{i}]" if isinstance(self.mode, list) else "mode"
                raise ValueError(
                    f"{AT}{where}: {mode} for {name}, which is better {METRIC_MODES[name]} (a swapped "
                    f"list?): the search would look for the worst routers; give {METRIC_MODES[name]} "
                    "or leave mode out (each metric has its direction)"
                )
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
    def primary_index(self) -> int:
        """Where :attr:`primary` stands among the objectives (in a trial's values)."""
        return self.objectives.index(self.primary)

    @property
    def direction(self) -> str:
        """The direction of :attr:`primary`."""
        return self.directions[self.primary_index]
