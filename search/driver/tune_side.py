"""The bridge as Ray Tune sees it: a Searcher that asks the study for packs, a TrialScheduler
that reports each pack's epoch to the study and returns its prune decision, and a Callback that
hears of retries (which Tune tells neither of the other two). Each forwards to the
:class:`~search.driver.bridge.OptunaBridge` and turns a full or read-only disk into the end of
the run (``OptunaBridge.stop_run``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

if TYPE_CHECKING:
    from search.driver.bridge import OptunaBridge


class BridgeSearcher(Searcher):
    def __init__(self, bridge: OptunaBridge) -> None:
        # No metric for Tune to enforce: a pack's reports carry its members' metrics.
        super().__init__(metric=None, mode=None)
        self.bridge = bridge

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]
        # Tune's own annotation leaves out Searcher.FINISHED, a str it accepts.
        if self.bridge.fatal is not None:
            return Searcher.FINISHED
        try:
            return self.bridge.suggest(trial_id)
        except OSError as exc:
            self.bridge.stop_run(exc)
            return Searcher.FINISHED

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
            return self.bridge.on_result(trial.trial_id, result)
        except OSError as exc:
            self.bridge.stop_run(exc)
            return TrialScheduler.STOP


class BridgeRestarts(Callback):
    # Tune tells neither the searcher nor the scheduler of a retry; only callbacks hear it.
    def __init__(self, bridge: OptunaBridge) -> None:
        self.bridge = bridge

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self.bridge.restarted(trial.trial_id)
