"""One Optuna study behind Ray Tune: a Searcher that asks, a TrialScheduler that prunes.

The study is the truth: sampled params, each epoch's intermediate value, and the final state
(COMPLETE, PRUNED or FAIL) of every trial. Tune runs the trials; after each epoch the
scheduler reports the metric to the study's trial and stops the trial when the study's pruner
says so; the searcher then tells the study PRUNED (not COMPLETE with a partial value), so the
sampler learns from it correctly. Only public extension points are used: Optuna's ask/tell
and Tune's Searcher and TrialScheduler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from search.driver.study import counted_trials, mark_interrupted
from search.space import Space
from search.trial.train import METRIC_MODES

NUMBER_KEY = "_optuna_number"
FINAL_KEY = "final"  # the trainable's last report: not an epoch
ERROR_KEY = "trial_error"  # the trainable caught an exception (e.g. NaN loss)


@dataclass
class _Live:
    trial: optuna.trial.Trial
    tune_id: str
    started: float = field(default_factory=time.time)
    pruned: bool = False
    last: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    epochs: int = 0
    node: str = ""
    device: str = ""
    best_epoch: int | None = None
    gpu_mem_mb: float | None = None  # peak CUDA memory of the trial
    restarts: int = 0  # Tune retried the trial from scratch (e.g. its node died)
    finished: bool = False  # the trainable ran to its end (its final report arrived)


class OptunaBridge:
    """Holds the study and the live trials; gives Tune a searcher and a scheduler over them.

    Args:
        study: The study (with its sampler and pruner) that records everything.
        space: Gives each trial's distributions and config.
        num_samples: Total trials wanted, counting those already in the study (>= 1).
        on_finish: Called with (frozen trial, live record, bridge) when a trial ends.
    """

    def __init__(
        self,
        study: optuna.Study,
        space: Space,
        num_samples: int,
        on_finish: Callable[[optuna.trial.FrozenTrial, _Live, OptunaBridge], None] | None = None,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.study = study
        self.space = space
        self.metric = space.search.metric
        self.num_samples = num_samples
        self.on_finish = on_finish
        self.live: dict[str, _Live] = {}
        self.asked = counted_trials(study)
        self.distributions = space.distributions()
        self.searcher = _Searcher(self)
        self.scheduler = _Scheduler(self)

    # -- searcher side ----------------------------------------------------------------------
    def suggest(self, tune_id: str) -> dict[str, Any] | str | None:
        if self.asked >= self.num_samples:
            return Searcher.FINISHED
        self.asked += 1
        trial = self.study.ask(self.distributions)
        trial.set_user_attr("tune_trial_id", tune_id)
        self.live[tune_id] = _Live(trial, tune_id)
        config = self.space.trial_config(trial.params)
        return {"config": config, NUMBER_KEY: trial.number}

    def complete(self, tune_id: str, result: dict[str, Any] | None, error: bool) -> None:
        live = self.live.pop(tune_id, None)
        if live is None:
            return
        t = live.trial
        if result:
            self._record(live, result)
        message = (result or {}).get(ERROR_KEY) or ("trial process failed" if error else None)
        value = live.best.get(self.metric)
        t.set_user_attr("last_metrics", live.last)
        t.set_user_attr("best_metrics", live.best)
        t.set_user_attr("epochs_run", live.epochs)
        t.set_user_attr("node", live.node)
        t.set_user_attr("device", live.device)
        t.set_user_attr("restarts", live.restarts)
        t.set_user_attr("gpu_mem_mb", live.gpu_mem_mb)
        t.set_user_attr("best_epoch", live.best_epoch)
        t.set_user_attr("start_time", live.started)
        t.set_user_attr("duration_s", time.time() - live.started)
        if message:
            t.set_user_attr("error", str(message))
            state = TrialState.FAIL
        elif live.pruned:
            state = TrialState.PRUNED
        elif not live.finished:
            # Stopped from outside (Ctrl-C, time budget, lost node): a partial value is no
            # result. Recorded as interrupted, so a resume runs a new trial in its place.
            mark_interrupted(self.study, [t.number])
            t.set_user_attr("error", "interrupted before its last epoch")
            state = TrialState.FAIL
        elif value is None or not math.isfinite(value):
            t.set_user_attr("error", f"no finite {self.metric} reported")
            state = TrialState.FAIL
        else:
            state = TrialState.COMPLETE
        frozen = self.study.tell(t, value if state == TrialState.COMPLETE else None, state=state)
        if self.on_finish is not None:
            self.on_finish(frozen, live, self)

    # -- scheduler side ---------------------------------------------------------------------
    def _record(self, live: _Live, result: dict[str, Any]) -> None:
        live.node = str(result.get("node_id") or result.get("node_ip") or live.node)
        live.device = str(result.get("device") or live.device)
        if result.get(FINAL_KEY) or ERROR_KEY in result:
            live.best_epoch = result.get("best_epoch", live.best_epoch)
            live.gpu_mem_mb = result.get("gpu_mem_mb")
            live.finished = True
            return
        epoch = int(result.get("epoch", live.epochs + 1))
        if epoch <= live.epochs:
            live.restarts += 1
        live.epochs = epoch
        for k in METRIC_MODES:
            v = result.get(k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            live.last[k] = float(v)
            better = max if METRIC_MODES[k] == "max" else min
            live.best[k] = better(live.best.get(k, v), float(v))

    def on_result(self, tune_id: str, result: dict[str, Any]) -> str:
        live = self.live.get(tune_id)
        if live is None or result.get(FINAL_KEY) or ERROR_KEY in result:
            return TrialScheduler.CONTINUE
        self._record(live, result)
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return TrialScheduler.CONTINUE  # the trial fails on its own
        # The trial keeps its best epoch (that is its final value), so the pruner compares
        # best-so-far values: a trial that peaked early is judged by its peak, not its decline.
        live.trial.report(live.best[self.metric], step=live.epochs)
        if live.trial.should_prune():
            live.pruned = True
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class _Searcher(Searcher):
    def __init__(self, bridge: OptunaBridge) -> None:
        # No metric for Tune to enforce: the last report of a trial carries no epoch metrics.
        super().__init__(metric=None, mode=None)
        self.bridge = bridge

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        # Tune's own annotation leaves out Searcher.FINISHED, a str it accepts.
        return self.bridge.suggest(trial_id)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self.bridge.complete(trial_id, result, error)


class _Scheduler(FIFOScheduler):
    def __init__(self, bridge: OptunaBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        return self.bridge.on_result(trial.trial_id, result)
