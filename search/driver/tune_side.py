"""The bridge as Ray Tune sees it: a Searcher that asks the study for packs, a TrialScheduler
that reports each pack's epoch to the study and returns its prune decision, and a Callback that
hears of retries (which Tune tells neither of the other two). Each forwards to the
:class:`~search.driver.bridge.OptunaBridge`, maps its :class:`~search.driver.bridge.Verdict`
to Tune's constants (the one place that knows them), and turns a full or read-only disk into
the end of the run (``OptunaBridge.stop_run``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from search.driver.bridge import OptunaBridge, Verdict

# What each verdict is in Tune's words: a searcher's None means "ask me again later".
TUNE_WORDS: dict[Verdict, str | None] = {
    Verdict.WAIT: None,
    Verdict.FINISHED: Searcher.FINISHED,
    Verdict.CONTINUE: TrialScheduler.CONTINUE,
    Verdict.STOP: TrialScheduler.STOP,
}


class BridgeSearcher(Searcher):
    def __init__(self, bridge: OptunaBridge) -> None:
        # No metric for Tune to enforce: a pack's reports carry its members' metrics.
        super().__init__(metric=None, mode=None)
        self.bridge = bridge

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        # Tune's own annotation leaves out Searcher.FINISHED, a str it accepts.
        try:
            answer = self.bridge.suggest(trial_id)
        except OSError as exc:
            self.bridge.stop_run(exc)
            return Searcher.FINISHED
        return TUNE_WORDS[answer] if isinstance(answer, Verdict) else answer

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        try:
            self.bridge.complete(trial_id, result, error)
        except OSError as exc:
            self.bridge.stop_run(exc)


class BridgeScheduler(FIFOScheduler):
    def __init__(self, bridge: OptunaBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict[str, Any]) -> str:
        try:
            verdict = self.bridge.on_result(trial.trial_id, result)
        except OSError as exc:
            self.bridge.stop_run(exc)
            verdict = Verdict.STOP
        word = TUNE_WORDS[verdict]
        assert word is not None, f"a report cannot be answered {verdict}"
        return word


class BridgeRestarts(Callback):
    # Tune tells neither the searcher nor the scheduler of a retry; only callbacks hear it.
    def __init__(self, bridge: OptunaBridge) -> None:
        self.bridge = bridge

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.bridge.restarted(trial.trial_id)


@dataclass(frozen=True)
class TuneSide:
    """What a Tuner is given of one bridge: its search_alg, its scheduler, one callback."""

    searcher: BridgeSearcher
    scheduler: BridgeScheduler
    callback: BridgeRestarts

    @classmethod
    def of(cls, bridge: OptunaBridge) -> TuneSide:
        return cls(BridgeSearcher(bridge), BridgeScheduler(bridge), BridgeRestarts(bridge))
