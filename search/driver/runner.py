"""``search run``: build the Tuner (local or cluster Ray), run it, export the best at the end."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from router_models import ConfigError
from search.data import RouterData
from search.driver.finish import finish
from search.driver.plan import (
    RunOptions,
    RunPlan,
    check_run_state,
    default_run_dir,
    plan_run,
)
from search.driver.resources import check_resources
from search.driver.rundata import check_resumed_data, first, load_run_data
from search.driver.session import process_state, ray_is_up, start_ray, stop_ray
from search.driver.tracking import Tracker
from search.driver.tuner import run_trials
from search.driver.warm_start import collect_seeds, first_tries
from search.errors import DISK_ERRORS, SpaceError, UserError
from search.files.atomic import atomic_write_bytes, write_parquet
from search.files.remote import probe_storage
from search.files.rundir import RunDir
from search.log import logger
from search.results.export import trial_rows
from search.results.records import RunInfo, holds_run, new_run_id, read_run_info, run_storage
from search.study.lock import RunLock, describe_holder
from search.study.store import close_interrupted, counted_trials, open_study, trials_started
from search.study.warm import write_seeds
from search.trial.config import build_model, check_fits
from search.trial.packable import check_packable

log = logger("driver")


def claim_run_dir(plan: RunPlan) -> tuple[RunPlan, RunLock]:
    """Lock the run dir before anything is written in it; returns the plan of the run dir
    claimed and its lock. A default name already taken (a run started in the same second) is
    replaced by a new one; a given one held by a live driver is refused, naming the holder."""
    while True:
        lock = RunLock(plan.run_dir, new=plan.auto_named)
        try:
            lock.acquire()
        except FileExistsError:
            if not plan.auto_named:
                # another driver made the dir given between our look and our mkdir: lock it as
                # it is now (held: refused, naming the holder; done: it holds a run)
                continue
            run_dir = default_run_dir(plan.space)
            plan = dataclasses.replace(plan, run_dir=run_dir, storage=str(run_dir))
            continue
        if lock.took_over:
            gone = describe_holder(lock.took_over)
            log.info(f"note: {plan.run_dir}: took over the lock of a driver that is gone ({gone})")
        return plan, lock


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended: ``code`` 0 (done), 1 (no trial completed) or 130 (stopped by Ctrl-C,
    its state saved), and its run dir."""

    code: int
    run_dir: Path

    @property
    def interrupted(self) -> bool:
        return self.code == 130


def run_search(request: RunOptions, *, hard_exit: bool = False) -> RunOutcome:
    """Run a search; returns how it ended (:class:`RunOutcome`). The process is left as it
    was (environment, log levels, signal handlers); a Ray this run started is shut down, one the
    caller started is left running.

    Args:
        hard_exit: A second Ctrl-C exits the process at once (the command line); else it
            raises KeyboardInterrupt where the run is.

    Raises:
        UserError: A mistake in the request, the space or the data (one line).
    """
    plan = plan_run(request)
    had_ray = ray_is_up()  # a Ray the caller started is used and left running
    with process_state():
        try:
            return _run_claimed(plan, hard_exit)
        finally:
            if not had_ray and ray_is_up():
                stop_ray(keep_logs=plan.debug)


def _run_claimed(plan: RunPlan, hard_exit: bool) -> RunOutcome:
    plan, claimed = claim_run_dir(plan)
    with claimed as lock:
        # Checked again under the lock: another driver may have started or finished a run here
        # between the plan and the lock.
        check_run_state(plan.run_dir, plan.resume, plan.space, plan.api)
        try:
            return RunOutcome(_run_locked(plan, lock, hard_exit), plan.run_dir)
        except OSError as exc:
            if exc.errno not in DISK_ERRORS:
                _forget_unstarted(plan, lock)
                raise
            where = exc.filename or plan.run_dir  # a write inside Optuna or Tune names no file
            if holds_run(plan.run_dir):  # what was done is saved: say how to go on
                raise UserError(
                    f"{where}: {DISK_ERRORS[exc.errno]}; the run's state is saved up to there: free "
                    f"space and resume with: python -m search run {plan.space_path} --out "
                    f"{plan.run_dir} --resume"
                ) from exc
            raise OSError(exc.errno, exc.strerror, str(where)) from exc
        except Exception:
            _forget_unstarted(plan, lock)
            raise


def _forget_unstarted(plan: RunPlan, lock: RunLock) -> None:
    """A fresh run that failed before its first trial leaves no half-made run dir behind (the
    same ``--out`` would refuse it as holding a run)."""
    if not plan.resume and not trials_started(plan.run_dir):
        lock.forget_run()


def _run_locked(plan: RunPlan, lock: RunLock, hard_exit: bool) -> int:
    info = read_run_info(plan.run_dir) if plan.resume else RunInfo()
    datas = load_run_data(plan)
    data = first(datas)
    try:  # a space's prior choice may name tasks the data does not have
        space, note = plan.space.for_data(bool(data.task_names) and data.tasks is not None, data.source)
    except ValueError as exc:
        raise SpaceError(f"{plan.space_path}: {str(exc).removeprefix('@')}") from exc
    if note:
        log.info(f"note: {note}")
    data_fp = check_resumed_data(plan, info.data, datas)
    run_id = info.run_id if plan.resume else new_run_id(plan.run_dir)
    storage = run_storage(plan.storage_root, plan.run_dir, run_id)
    plan = dataclasses.replace(plan, space=space, storage=storage)
    if plan.storage_root is not None:
        probe_storage(plan.storage_root)  # the root: the run's folder is made by its first write
    if plan.address is not None:
        # A cluster is joined before anything is written: a wrong address or token is one
        # line, and the run dir is not made.
        start_ray(plan)
    wait_s = check_resources(space.resources.cpu, space.resources.gpu, plan.address is not None)
    plan = dataclasses.replace(plan, start_wait_s=wait_s)
    packable = _probe_models(plan, data)

    # -- the first writes: the run's record, its space, its study ---------------------------
    lock.keep_dir()
    if not plan.resume:
        atomic_write_bytes(RunDir(plan.run_dir).space, Path(plan.space_path).read_bytes())
        RunInfo(
            space=plan.space_path,
            run_id=run_id,
            data_source=data.source,
            data_options=dataclasses.asdict(plan.data_options),
            data=data_fp,
            storage_root=plan.storage_root,
            storage=plan.storage,
            address=plan.address,
            started=time.time(),
        ).write(plan.run_dir)
    tries: list[dict[str, Any]] = []
    if plan.warm_start and not plan.resume:
        # written before the study is first opened, which reads it (and every resume after)
        seeds = collect_seeds(plan.warm_start, plan.space, data_fp)
        write_seeds(plan.run_dir, seeds, plan.warm_start)
        tries = first_tries(seeds, plan.space)
    elif plan.warm_start:
        log.info("warm start: a resumed run keeps the earlier trials it started with")
    notes: list[str] = []
    study = open_study(plan.run_dir, plan.space, notes=notes)
    for note in notes:
        log.info(f"note: {note}")
    closed = close_interrupted(study)
    done = counted_trials(study)
    if plan.resume:
        log.info(
            f"resuming {plan.run_dir}: {done} trials done"
            + (f", {closed} interrupted trial(s) will be re-run" if closed else "")
        )
    for params in [*plan.enqueue, *tries]:  # tried first, in order, before the sampler's own
        study.enqueue_trial(params, skip_if_exists=True)
    remaining = plan.num_samples - done
    tracker = _tracker(plan)
    try:
        if remaining > 0 and run_trials(plan, study, datas, remaining, packable, hard_exit, tracker):
            return _interrupted(plan, study, plan.space_path)
        code = finish(plan, study, datas)
        if tracker is not None:
            rd = RunDir(plan.run_dir)
            outputs = [rd.config, rd.best_router, rd.ensemble_router, rd.routing_table, rd.results, rd.space]
            tracker.outputs([*outputs, *sorted(rd.path.glob("*.png")), rd.path / "report.md"])
        return code
    finally:
        if tracker is not None:
            tracker.close()


def _tracker(plan: RunPlan) -> Tracker | None:
    """The run's MLflow tracker (``--mlflow``): an experiment named after the run dir."""
    if plan.mlflow is None:
        return None
    search = plan.space.search
    params = {
        "space": plan.space_path,
        "metric": search.metric,
        "num_samples": plan.num_samples,
        "pack_size": plan.pack_size,
        "sampler": search.sampler.type,
        "pruner": search.pruner.type,
        "seed": search.seed,
    }
    log.info(f"tracking every trial in MLflow: {plan.mlflow}, experiment {plan.run_dir.name}")
    return Tracker(plan.mlflow, plan.run_dir.name, params)


def _probe_models(plan: RunPlan, data: RouterData) -> bool:
    """Build a model of each type from the space's low/first values: config errors surface
    before Ray, and a model type that cannot be packed is said at once when packs were asked.
    Returns whether every type packs."""
    packable = True
    for model_type in plan.space.types:
        config = plan.space.trial_config({"model_type": model_type})
        try:
            check_fits(build_model(config, data, meta=True), torch.device("cpu"))
        except ConfigError:
            continue  # too big to probe here; its trials say so, or pack on a bigger device
        try:
            check_packable(functools.partial(build_model, config, data))
        except ConfigError as exc:
            if plan.pack_size != "auto" and plan.pack_size != 1:
                raise UserError(f"pack_size {plan.pack_size}: {exc}") from exc
            packable = False
    return packable


def _interrupted(plan: RunPlan, study: optuna.Study, space_arg: str) -> int:
    """After Ctrl-C: save what is known, say how to resume; no export."""
    close_interrupted(study)
    write_parquet(RunDir(plan.run_dir).results, trial_rows(study, plan.space))
    log.info(
        f"interrupted: {counted_trials(study)} of {plan.num_samples} trials done, state saved "
        f"in {plan.run_dir}; resume with:\n  python -m search run {space_arg} "
        f"--out {plan.run_dir} --resume"
    )
    return 130
