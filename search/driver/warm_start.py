"""``--warm-start RUN_DIR...``: the finished trials of earlier runs that fit this run's space
(completed, and pruned ones with what they reported) become observations its sampler learns
from (``search/study/warm.py``).

A trial fits when this space could have sampled exactly its configuration: each of this
space's searched params for the trial's model type has a value in the trial (by the same name,
or the same setting under another model-type prefix) inside this space's range, and the
configuration this space makes of those values (fixed settings included) is the one the
trial trained. A trial that does not fit is left out and counted, with the first reason. A run
whose search measured another objective, or none of whose trials fit, seeds nothing and says
why. Each earlier run gets one line: how many trials seed the study, and how its data and
LLMs differ from this run's. The best few completed ones (:data:`FIRST_TRIES`) are also tried
again first, on this run's data, so the search starts where the earlier runs ended.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from search.data.fingerprint import difference
from search.errors import UserError
from search.files.rundir import RunDir
from search.log import logger
from search.metrics.direction import Direction
from search.results.records import read_run_info
from search.space import Space, load_space
from search.study.store import open_study
from search.study.warm import Seed

log = logger("driver")
FIRST_TRIES = 3  # the earlier runs' best configurations, tried again first on this run's data


def _contains(d: BaseDistribution, value: Any) -> bool:
    if isinstance(d, CategoricalDistribution):
        return value in d.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(d, IntDistribution):
        return float(value).is_integer() and d.low <= value <= d.high and (int(value) - d.low) % d.step == 0
    if isinstance(d, FloatDistribution):
        return d.low <= value <= d.high
    return False


def fitted_params(params: Mapping[str, Any], then: Space, now: Space) -> tuple[dict[str, Any] | None, str]:
    """``params`` of a trial of space ``then`` as space ``now`` names them, or None and why
    they do not fit (see the module doc)."""
    t = then.model_type_of(params)
    if t not in now.types:
        return None, f"model type {t} is not searched now"
    bare = {k.split(".", 1)[1] if k.startswith(f"{t}.") else k: v for k, v in params.items()}
    out: dict[str, Any] = {}
    for name, d in now.distributions(t).items():
        if name == "model_type":
            out[name] = t
            continue
        key = name.split(".", 1)[1] if name.startswith(f"{t}.") else name
        value = params.get(name, bare.get(key))
        if value is None:
            return None, f"{key} was not searched then"
        if not _contains(d, value):
            return None, f"{key} {value!r} is outside this space's range"
        out[name] = value
    config_then = then.trial_config(params)["pipeline_config"]
    config_now = now.trial_config(out)["pipeline_config"]
    if config_then != config_now:
        for part in ("model_config", "train_config"):
            a, b = config_then.get(part, {}), config_now.get(part, {})
            for key in sorted(set(a) | set(b)):
                if a.get(key) != b.get(key):
                    return None, f"{key} was {a.get(key)!r}, this space makes {b.get(key)!r}"
        return None, "another configuration"
    return out, ""


def _seeds_of(run_dir: Path, space: Space, data_fp: Mapping[str, Any]) -> tuple[list[Seed], str]:
    """The seeds one earlier run gives, and its line."""
    rd = RunDir(run_dir)
    if not rd.space.is_file() or not rd.study.is_file():
        raise UserError(f"--warm-start {run_dir}: not a run dir (no {RunDir.SPACE} and {RunDir.STUDY})")
    then = load_space(str(rd.space))
    if then.search.objectives != space.search.objectives or then.search.directions != space.search.directions:
        return [], (
            f"warm start: {run_dir} searched {', '.join(then.search.objectives)}, this run "
            f"{', '.join(space.search.objectives)}: its trials' values do not compare, none used"
        )
    study = open_study(run_dir, then, write=False)
    seeds: list[Seed] = []
    misfits: Counter[str] = Counter()
    # pruned trials too (by what they reported), as the sampler ranks its own; a run of several
    # objectives prunes nothing
    states = (TrialState.COMPLETE,) if space.search.multi else (TrialState.COMPLETE, TrialState.PRUNED)
    done = study.get_trials(deepcopy=False, states=states)
    for trial in done:
        params, why = fitted_params(trial.params, then, space)
        if params is None:
            misfits[why] += 1
            continue
        values = [float(v) for v in trial.values] if trial.state == TrialState.COMPLETE else None
        steps = {int(k): float(v) for k, v in trial.intermediate_values.items()}
        seeds.append(Seed(params, values, str(run_dir), trial.number, steps))
    recorded = read_run_info(run_dir).data
    diff = difference(recorded, dict(data_fp)) if isinstance(recorded, dict) else "its data unrecorded"
    data = "the same data" if diff is None else f"other data: {diff}"
    left = ""
    if misfits:
        why, n = misfits.most_common(1)[0]
        left = f"; {sum(misfits.values())} do not fit this space and are left out (e.g. {n}: {why})"
    pruned = sum(s.values is None for s in seeds)
    used = f"{len(seeds)} of {len(done)} finished trials of {run_dir} seed the study ({pruned} pruned)"
    return seeds, f"warm start: {used}{left}; {data}"


def first_tries(seeds: Sequence[Seed], space: Space, k: int = FIRST_TRIES) -> list[dict[str, Any]]:
    """The params of the ``k`` best completed seeds (distinct), best first: tried again first,
    so the search starts where the earlier runs ended (one objective; none with several)."""
    if space.search.multi:
        return []
    direction = Direction(space.search.directions[0])
    done = sorted((s for s in seeds if s.values), key=lambda s: direction.key(s.values[0]))  # type: ignore[index]
    out: list[dict[str, Any]] = []
    for s in done:
        if s.params not in out:
            out.append(dict(s.params))
        if len(out) == k:
            break
    return out


def collect_seeds(run_dirs: Sequence[str], space: Space, data_fp: Mapping[str, Any]) -> list[Seed]:
    """Every earlier run's fitting trials, in order, each run said in one line.

    Raises:
        UserError: A path that is not a run dir, or a sampler that cannot learn from them.
    """
    if space.search.sampler.type == "nsga2":
        raise UserError(
            "--warm-start: the nsga2 sampler breeds its own generations and cannot take earlier trials; "
            "use the tpe sampler (search.sampler.type) to warm-start"
        )
    seeds: list[Seed] = []
    for run_dir in run_dirs:
        found, line = _seeds_of(Path(run_dir), space, data_fp)
        log.info(line)
        seeds += found
    if seeds and space.search.sampler.type == "random":
        log.info("warm start: note: a random sampler learns nothing from earlier trials")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return seeds
