"""A warm start: earlier runs' finished trials as observations the study's sampler learns from
(completed ones by their values, pruned ones by their reports, as the sampler ranks its own).

The seeds are kept in the run dir (``warm_start.json``, written once when the run starts, read
by :func:`search.study.store.open_study` every time the study is opened), so a resume samples
as the first start did even if the earlier runs have changed or gone since: reproducibility
and resume hold as without a warm start. They are never written into the study: the trials a
run counts, exports, prunes against and reports are its own (``optuna_internals
.with_observations`` shows them to the sampler only).

Who calls what: the driver collects the seeds (``search/driver/warm_start.py``) and writes them
with :func:`write_seeds`; ``open_study`` wraps the space's sampler in :class:`WarmSampler` when
the run dir holds seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from search.errors import UserError
from search.files.atomic import write_json
from search.files.parse import ParseError, read_json
from search.files.rundir import RunDir
from search.space import Space
from search.study.optuna_internals import numbered, with_observations


@dataclass(frozen=True)
class Seed:
    """One earlier trial: its params (as this run's space names them), its values (a pruned
    trial has none), its reports by step (what a pruned trial is ranked by), and where it came
    from (the run dir and its trial number)."""

    params: dict[str, Any]
    values: list[float] | None
    source: str
    number: int
    intermediate: dict[int, float] | None = None


def write_seeds(run_dir: Path, seeds: Sequence[Seed], sources: Sequence[str]) -> None:
    write_json(RunDir(run_dir).warm_start, {"sources": list(sources), "seeds": [asdict(s) for s in seeds]})


def read_seeds(run_dir: Path) -> list[Seed]:
    """The run's seeds; [] when it was not warm-started.

    Raises:
        UserError: The record is damaged (one line).
    """
    path = RunDir(run_dir).warm_start
    if not path.exists():
        return []
    try:
        raw = read_json(path, "warm start record", max_bytes=256 << 20)
        return [
            Seed(
                dict(s["params"]),
                None if s["values"] is None else [float(v) for v in s["values"]],
                str(s["source"]),
                int(s["number"]),
                {int(k): float(v) for k, v in (s.get("intermediate") or {}).items()},
            )
            for s in raw["seeds"]
        ]
    except (ParseError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: not a warm start record ({exc}); restore it, or start a new run") from exc


def frozen(seeds: Sequence[Seed], space: Space) -> list[FrozenTrial]:
    """The seeds as finished trials of ``space``'s distributions, numbered below 0 (the
    oldest): what the sampler reads."""
    out = []
    for i, seed in enumerate(seeds):
        dists: dict[str, BaseDistribution] = space.distributions(space.model_type_of(seed.params))
        params = {k: v for k, v in seed.params.items() if k in dists}
        number = i - len(seeds)
        trial = optuna.trial.create_trial(
            params=params,
            distributions={k: dists[k] for k in params},
            values=None if seed.values is None else list(seed.values),
            state=TrialState.PRUNED if seed.values is None else TrialState.COMPLETE,
            intermediate_values=dict(seed.intermediate or {}),
            user_attrs={"warm_start": f"{seed.source} trial {seed.number}"},
        )
        out.append(numbered(trial, number))
    return out


class WarmSampler(BaseSampler):
    """The space's sampler, shown ``seeds`` beside the study's own trials whenever it samples
    (its model learns from them; a random sampler ignores them). Everything else is the
    inner sampler's."""

    def __init__(self, inner: BaseSampler, seeds: list[FrozenTrial]) -> None:
        self.inner = inner
        self.seeds = seeds

    def __str__(self) -> str:
        return f"{self.inner} warm-started from {len(self.seeds)} trials"

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self.inner.infer_relative_search_space(with_observations(study, self.seeds), trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self.inner.sample_relative(with_observations(study, self.seeds), trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        view = with_observations(study, self.seeds)
        return self.inner.sample_independent(view, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()
