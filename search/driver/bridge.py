"""One Optuna study behind Ray Tune: a Searcher that asks, a TrialScheduler that prunes.

The study is the truth: sampled params, each epoch's intermediate value, and the final state
(COMPLETE, PRUNED or FAIL) of every trial. Each Ray Tune trial trains a pack of one or more
Optuna trials (its members; see ``packer.py``). After each epoch the scheduler reports every
member's metric to its own Optuna trial and asks the study's pruner about each: a pruned member
is told PRUNED at once (not COMPLETE with a partial value) and leaves its pack through the
control actor; when no member is left Tune stops the pack. The bridge answers in its own terms
(a :class:`Verdict`) and knows nothing of Ray: ``tune_side.py`` is what Tune calls, forwarded
here, and maps each verdict to Tune's constants. With several objectives, what is told and how
a member is judged is ``search/study/objectives.py``'s.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from search.data.data_options import ENCODER_PARAM
from search.driver.packer import Packer
from search.errors import DISK_ERRORS
from search.metrics.direction import METRIC_MODES, Direction
from search.space import Space
from search.study.objectives import objectives_of
from search.study.optuna_internals import trial_of
from search.study.ordering import AskGate
from search.study.store import counted_trials, held_writes, mark_interrupted
from search.study.views import GroupedPruner, view
from search.trial.protocol import SAVE_FAILED, EpochResult, Member, PackFailed, PackResult, PackSpec, decode
from search.trial.train_config import resolve_train_config


class Verdict(enum.Enum):
    """What the bridge answers: to an ask (``suggest``) and to a pack's report (``on_result``).

    ``WAIT`` and ``FINISHED`` answer an ask: nothing may be asked yet (ask again later), or no
    trial is left to ask. ``CONTINUE`` and ``STOP`` answer a report: the pack trains on, or
    every member is closed and the pack ends.
    """

    WAIT = "wait"
    FINISHED = "finished"
    CONTINUE = "continue"
    STOP = "stop"


@dataclass
class _Live:
    """One member: an Optuna trial inside a running pack."""

    trial: optuna.trial.Trial
    tune_id: str
    pack: int
    started: float = field(default_factory=time.time)  # asked; then when its pack began training
    last: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)
    chosen: dict[str, float] = field(default_factory=dict)  # metrics of its best epoch so far
    vectors: dict[str, list[float]] = field(default_factory=dict)  # objective vectors by step
    epochs: int = 0
    node: str = ""
    device: str = ""
    best_epoch: int | None = None
    gpu_mem_mb: float | None = None  # peak CUDA memory of its pack
    restarts: int = 0  # Tune retried the pack from scratch (e.g. its node died)
    closed: bool = False
    last_epoch: int = 0  # the epoch it ends at (its config's epochs)
    # per reported epoch: its own epoch, when the report came (time.time()), its finite metrics
    history: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.trial.number)


class OptunaBridge:
    """Holds the study and the live packs; gives Tune a searcher and a scheduler over them.

    Args:
        study: The study (with its sampler and pruner) that records everything.
        space: Gives each trial's distributions and config.
        num_samples: Total Optuna trials wanted, counting those already in the study (>= 1).
        packer: Forms each Tune trial's pack.
        control: The actor that tells packs which members to drop, or None when nothing is
            ever pruned.
        on_finish: Called with (frozen trial, live record, bridge) when a member ends.
        ordered: Give each pack a fixed view of the study (asked behind a lag of ``slots``
            packs), so the search does not depend on timing (``search/study/ordering.py``).
        slots: Packs that train at once.
        refill: Fill the slots a running pack's members free (pruned, failed, finished) with
            new trials, asked at its epoch boundary, drawn as a new pack is (they train as a
            cohort of their own); needs ``control`` and not ``ordered`` (when a slot frees
            depends on timing).
    """

    def __init__(
        self,
        study: optuna.Study,
        space: Space,
        num_samples: int,
        packer: Packer,
        control: Any = None,
        on_finish: Callable[[optuna.trial.FrozenTrial, _Live, OptunaBridge], None] | None = None,
        ordered: bool = False,
        slots: int = 1,
        refill: bool = False,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if refill and (control is None or ordered):
            raise ValueError("refill needs a control actor and an unordered search")
        self.refill = refill
        self.study = study
        self.space = space
        self.metric = space.search.primary
        self.objectives = objectives_of(study, space.search)
        self.num_samples = num_samples
        self.packer = packer
        self.control = control
        self.on_finish = on_finish
        self.packs: dict[str, dict[int, _Live]] = {}  # Tune trial id -> members by number
        # A write to the study failed for lack of space: the run ends (see ``stop_run``).
        self.fatal: OSError | None = None
        self.on_fatal: Callable[[OSError], None] | None = None
        self.asked = counted_trials(study)
        self.gate = AskGate(slots if ordered else None, len(study.get_trials(deepcopy=False)))
        if ordered and isinstance(study.pruner, GroupedPruner):
            study.pruner.scope = self.gate.scope
        self.members: dict[int, _Live] = {}  # every member of this session by trial number
        self.leaders: dict[str, dict[str, Any]] = {}  # Tune trial id -> its first member's params

    def stop_run(self, exc: OSError) -> None:
        """The study cannot be written (a full or read-only disk): end the run, keep the error
        for the driver to say once. Any other OSError is a bug and is raised."""
        if exc.errno not in DISK_ERRORS:
            raise exc
        if self.fatal is None:
            self.fatal = exc
            if self.on_fatal is not None:
                self.on_fatal(exc)

    def running(self) -> int:
        """Members still training."""
        return sum(not m.closed for pack in self.packs.values() for m in pack.values())

    # -- searcher side ----------------------------------------------------------------------
    def _ended(self, number: int) -> bool:
        live = self.members.get(number)
        return live is None or live.closed

    def suggest(self, tune_id: str) -> dict[str, Any] | Verdict:
        """The config of pack ``tune_id`` (its members), or WAIT or FINISHED."""
        if self.fatal is not None:
            return Verdict.FINISHED
        if not self.gate.may_ask(self._ended):
            return Verdict.WAIT  # a pack the next one must see is still training
        keep = self.gate.keep({t.number for t in self.packer.pending})
        asking = view(self.study, keep, pruner=self.study.pruner) if keep is not None else None
        trials, asked = self.packer.next_pack(self.num_samples - self.asked, study=asking)
        self.asked += asked
        if not trials:
            return Verdict.FINISHED
        if asking is not None:  # the members report to the study itself, not to the view
            trials = [trial_of(self.study, t) for t in trials]
        leader = trials[0].number
        self.packs[tune_id] = {}
        self.leaders[tune_id] = trials[0].params
        members = self._join(tune_id, leader, trials)
        self.gate.add([t.number for t in trials])
        return PackSpec(leader, members).to_config()

    def _join(self, tune_id: str, leader: int, trials: list[optuna.trial.Trial]) -> tuple[Member, ...]:
        """``trials`` become members of pack ``tune_id`` (led by trial ``leader``)."""
        members = tuple(Member(t.number, self.space.trial_config(t.params)) for t in trials)
        for t, m in zip(trials, members):
            with held_writes(self.study):  # one append for all three
                t.set_user_attr("tune_trial_id", tune_id)
                t.set_user_attr("pack", leader)
                t.set_user_attr("model_type", self.space.model_type_of(t.params))
            live = _Live(t, tune_id, leader, last_epoch=int(resolve_train_config(m.config)["epochs"]))
            self.packs[tune_id][t.number] = self.members[t.number] = live
        return members

    def _refill(self, tune_id: str, members: dict[int, _Live], report: EpochResult) -> list[Member]:
        """New members for the slots of pack ``tune_id`` that this epoch freed."""
        staying = sum(not m.closed and report.step(n) < m.last_epoch for n, m in members.items())
        free = self.packer.pack_size - staying
        budget = self.num_samples - self.asked
        if free <= 0 or budget <= 0:
            return []
        encoder = self.leaders[tune_id].get(ENCODER_PARAM)
        fixed = {ENCODER_PARAM: encoder} if encoder is not None else None  # one pack, one input
        trials, asked = self.packer.refill(free, budget, fixed)
        self.asked += asked
        if not trials:
            return []
        leader = next(iter(members.values())).pack
        return list(self._join(tune_id, leader, trials))

    def complete(self, tune_id: str, result: dict[str, Any] | None, error: bool) -> None:
        members = self.packs.pop(tune_id, None)
        if members is None:
            return
        message = decode(result)
        final = message if isinstance(message, PackResult) else None
        pack_error = message.error if isinstance(message, PackFailed) else None
        if pack_error is None and error:
            pack_error = "trial process failed"
        for live in members.values():
            if live.closed:
                continue
            if isinstance(message, (PackResult, PackFailed)):
                live.node = message.node_id or live.node
            if final is not None:
                live.gpu_mem_mb = final.gpu_mem_mb
            number = live.number
            if pack_error:
                self._close(live, TrialState.FAIL, pack_error)
            elif final is not None and number in final.failed:
                if final.failed[number].startswith(SAVE_FAILED):  # the disk's fault, not the config's
                    mark_interrupted(self.study, [number])
                self._close(live, TrialState.FAIL, final.failed[number])
            elif final is not None and number in final.complete:
                self._completed(live, final.complete[number])
            else:
                # Stopped from outside (Ctrl-C, time budget, lost node): a partial value is no
                # result. Recorded as interrupted, so a resume runs a new trial in its place.
                mark_interrupted(self.study, [live.number])
                self._close(live, TrialState.FAIL, "interrupted before its last epoch")

    def _completed(self, live: _Live, best_epoch: int) -> None:
        """``live`` ran every epoch and its router is saved."""
        live.best_epoch = best_epoch
        missing = self.objectives.missing(live.chosen)
        if missing is not None:
            self._close(live, TrialState.FAIL, f"no finite {missing} reported")
        else:
            self._close(live, TrialState.COMPLETE)

    def _close(self, live: _Live, state: TrialState, message: str | None = None) -> None:
        t = live.trial
        live.closed = True
        attrs = {
            "last_metrics": live.last,
            "best_metrics": live.best,
            "epochs_run": live.epochs,
            "node": live.node,
            "device": live.device,
            "restarts": live.restarts,
            "gpu_mem_mb": live.gpu_mem_mb,
            "best_epoch": live.best_epoch,
            "start_time": live.started,
            "duration_s": time.time() - live.started,
            "epoch_times": [when for _, when, _ in live.history],
        }
        with held_writes(self.study):  # one append, not one per attribute; read back after
            for k, v in attrs.items():
                t.set_user_attr(k, v)
            for k, v in live.best.items():  # each metric under its own name, for a dashboard
                t.set_user_attr(k, v)
            if message:
                t.set_user_attr("error", message)
        # As in Optuna's own loop, a pruned trial's value is its last intermediate value.
        value = self.objectives.final(live.chosen) if state == TrialState.COMPLETE else None
        frozen = self.study.tell(t, value, state=state)
        if self.on_finish is not None:
            self.on_finish(frozen, live, self)

    def restarted(self, tune_id: str) -> None:
        """Tune retries a pack from scratch (its process or node died)."""
        # Counted here, not from a reset epoch: a pack may die before its first report.
        for live in self.packs.get(tune_id, {}).values():
            if not live.closed:
                live.restarts += 1

    # -- scheduler side ---------------------------------------------------------------------
    def on_result(self, tune_id: str, result: dict[str, Any]) -> Verdict:
        """Pack ``tune_id`` reported an epoch: record it, prune whom the pruner says, refill."""
        members = self.packs.get(tune_id)
        report = decode(result)
        if members is None or not isinstance(report, EpochResult):
            return Verdict.CONTINUE
        for number, reason in report.failed.items():
            live = members.get(number)
            if live is not None and not live.closed:
                if reason.startswith(SAVE_FAILED):  # the disk's fault, not the config's
                    mark_interrupted(self.study, [number])
                self._close(live, TrialState.FAIL, reason)
        for number, best_epoch in report.complete.items():  # finished while the pack goes on
            live = members.get(number)
            if live is not None and not live.closed:
                self._completed(live, best_epoch)
        # in trial-number order: a member is judged against its pack's lower-numbered members
        for number, metrics in sorted(report.metrics.items()):
            live = members.get(number)
            if live is None or live.closed:
                continue
            self._record(live, metrics, report)
            # The trial keeps its best epoch (that is its final value), so the pruner compares
            # best-so-far values: a trial that peaked early is judged by its peak.
            if self.objectives.report(live.trial, report.step(number), live.chosen, live.vectors):
                self._close(live, TrialState.PRUNED)
        joined = self._refill(tune_id, members, report) if self.refill else []
        if all(m.closed for m in members.values()):
            return Verdict.STOP
        if self.control is not None:
            closed = [n for n, m in members.items() if m.closed]
            self.control.decide.remote(tune_id, report.epoch, closed, [asdict(m) for m in joined])
        return Verdict.CONTINUE

    def _record(self, live: _Live, metrics: dict[str, float], report: EpochResult) -> None:
        live.node = report.node_id or live.node
        live.device = report.device or live.device
        if live.epochs == 0 and report.started is not None:
            # not the ask: Tune may hold a pack pending (a member that joined a running pack
            # keeps its ask, which is after the pack began)
            live.started = max(live.started, report.started)
        live.epochs = report.step(live.number)
        live.history.append((live.epochs, time.time(), {}))
        for k in METRIC_MODES:
            v = metrics.get(k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                continue
            live.last[k] = float(v)
            live.history[-1][2][k] = float(v)
            live.best[k] = Direction.of(k).best([live.best.get(k, float(v)), float(v)])
        if self.objectives.better(live.history[-1][2], live.chosen):
            live.chosen = dict(live.history[-1][2])
