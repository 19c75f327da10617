"""The Ray Tune experiment of a run: the trials still to run, as packs, through one Tuner whose
searcher and scheduler are the study (``bridge.py``); one line per finished trial."""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any

import optuna
from optuna.trial import TrialState

from search.driver.finish import router_keeper
from search.driver.plan import RunPlan, make_fidelity, resolve_pack_size, uses_refill
from search.driver.rundata import RunData, first
from search.driver.session import QUIETED_LOGGERS, start_ray
from search.driver.stopping import Interrupt, disk_error
from search.driver.tracking import trial_record
from search.errors import UserError
from search.files.rundir import RunDir
from search.log import logger
from search.study.store import close_interrupted, counted_trials
from search.trial.protocol import TrialSettings

log = logger("driver")


def say_progress(frozen: Any, live: Any, bridge: Any) -> None:
    """One line per finished trial: its state and value, the best so far (resumed runs
    included), and the running / pruned / done counts."""
    study = bridge.study
    states = [t.state for t in study.get_trials(deepcopy=False)]
    value = live.best.get(bridge.metric)
    shown = f"{value:.4f}" if value is not None else "-"
    best = bridge.objectives.progress()
    extra = f"  ({frozen.user_attrs.get('error')})" if frozen.state == TrialState.FAIL else ""
    packs = sum(any(not m.closed for m in pack.values()) for pack in bridge.packs.values())
    log.info(
        f"trial {frozen.number:>3}  {frozen.state.name:<8}  epochs {live.epochs:>2}  "
        f"{bridge.metric} {shown}  {best}  | training {bridge.running()} trials in {packs} "
        f"pack{'s' if packs != 1 else ''}  "
        f"pruned {states.count(TrialState.PRUNED)}  done {counted_trials(study)}/{bridge.num_samples}"
        f"{extra}"
    )


def run_trials(
    plan: RunPlan,
    study: optuna.Study,
    datas: RunData,
    remaining: int,
    packable: bool,
    hard_exit: bool = False,
    tracker: Any = None,
) -> bool:
    """Run the trials through Ray Tune; True when stopped by Ctrl-C."""
    if plan.address is None:
        # Local mode: every Ray process binds to 127.0.0.1 only. Read when ray is first
        # imported, which is why nothing above imports ray.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray
    from ray import tune

    from search.driver.bridge import OptunaBridge
    from search.driver.control import start_control
    from search.driver.packer import Packer
    from search.driver.tune_side import TuneSide
    from search.trial.trainable import data_payload, router_trainable

    space = plan.space
    if not ray.is_initialized():
        start_ray(plan)  # else the caller's Ray (or the cluster joined above): used, left running
    resources: dict[str, float] = {"cpu": space.resources.cpu}
    gpu = space.resources.gpu
    if gpu and ray.cluster_resources().get("GPU", 0) == 0:
        log.info(f"no GPU in the Ray cluster: resources.gpu {gpu} ignored, trials run on CPU threads")
        gpu = None
    if gpu:
        resources["gpu"] = gpu
    slots = space.search.max_concurrent_trials or max(
        1, int(ray.cluster_resources().get("CPU", 1) // space.resources.cpu)
    )
    pack_size = resolve_pack_size(plan.pack_size, gpu is not None, packable, remaining, slots)
    widths = {encoder: d.embedding_dim for encoder, d in datas.items()}
    packer = Packer(study, space, pack_size, widths, first(datas).num_models, data=first(datas))
    prunes = space.search.pruner.type != "none"
    refill = uses_refill(space.search, pack_size, gpu is not None)
    control = start_control() if (prunes or refill) and pack_size > 1 else None
    keeper = router_keeper(plan, study)

    def on_finish(frozen: Any, live: Any, bridge: Any) -> None:
        say_progress(frozen, live, bridge)
        if tracker is not None:
            tracker.trial(trial_record(frozen, live, space.search.objectives))
        if frozen.state == TrialState.COMPLETE:
            keeper.take(frozen)

    bridge = OptunaBridge(
        study,
        space,
        plan.num_samples,
        packer,
        control=control,
        on_finish=on_finish,
        ordered=space.search.reproducible,
        slots=slots,
        refill=refill,
    )
    fidelity = make_fidelity(space)
    # What a step of an intermediate value counts: an epoch, on this many train questions.
    n_train = len(first(datas).splits["train"])
    study.set_user_attr(
        "fidelity",
        {
            "resource": fidelity.resource,
            "step": "epoch",
            "train_questions": fidelity.schedule(space.max_epochs, n_train),
        },
    )
    settings = TrialSettings(
        control=control,
        cpus=space.resources.cpu,
        gpu=gpu,
        seed=space.search.seed,
        metric=space.search.primary,
        storage=plan.storage,
        debug=plan.debug,
        fidelity=fidelity,
        latency="router_latency_ms" in space.search.objectives,
    )
    trainable = tune.with_resources(
        tune.with_parameters(
            router_trainable, data={e: data_payload(d) for e, d in datas.items()}, settings=settings
        ),
        resources,
    )
    tune_storage = plan.storage if plan.address else str(RunDir(plan.run_dir).tune)
    concurrency = space.search.max_concurrent_trials
    log.info(
        f"searching {space.name}: {remaining} trial(s) to run, {plan.num_samples} in total, "
        f"{space.search.objective_text}, pruner "
        f"{space.search.pruner.type}, packs of up to {pack_size}{' refilled' if refill else ''}, "
        f"resources {resources} per pack, "
        f"data {first(datas).source}"
    )
    log.info(f"watch it live: python -m search dashboard {plan.run_dir}")
    with warnings.catch_warnings():  # Optuna calls metric names experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if study.metric_names is None:  # the objective's name, for a dashboard's tables and plots
            study.set_metric_names(list(space.search.objectives))
    interrupt = Interrupt(hard_exit=hard_exit)
    bridge.on_fatal = lambda exc: setattr(interrupt.flag, "fatal", True)
    if plan.start_wait_s is not None:
        interrupt.flag.deadline = time.monotonic() + plan.start_wait_s
    tune_side = TuneSide.of(bridge)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=tune_side.searcher,
            scheduler=tune_side.scheduler,
            num_samples=remaining,
            max_concurrent_trials=concurrency,
            reuse_actors=True,
            time_budget_s=space.search.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=f"tune-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=tune_storage,
            verbose=2 if plan.verbose else 0,
            log_to_file=True,
            stop=interrupt.stopper(),
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[tune_side.callback],
        ),
    )
    if not plan.verbose:
        # Tune's newer console output prints a header even at verbose 0; the classic one
        # is silent, leaving our one line per trial. Its per-trial JSON/CSV logs duplicate
        # results.parquet and the study.
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        for name in QUIETED_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    # Ctrl-C is ours: the Stopper below ends the experiment cleanly on the first one.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # Tune lets a custom searcher keep one pending trial unless told more (before Ray's
    # fix), which would start a cluster's packs one at a time.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(16, slots)))
    with interrupt:
        try:
            tuner.fit()
        except Exception as exc:  # Tune wraps what the driver's own writes raised
            disk = disk_error(exc)
            if disk is None:
                raise
            raise disk from exc
    if bridge.fatal is not None:
        raise bridge.fatal
    # Trials asked but never trained (a time budget or Ctrl-C ended the run first).
    close_interrupted(study)
    if interrupt.flag.timed_out:
        raise UserError(
            f"resources.cpu {space.resources.cpu:g}: no node that can hold a pack joined within "
            f"{plan.start_wait_s:.0f} s; lower resources.cpu, or add such a node and resume with "
            f"--resume --out {plan.run_dir}"
        )
    return interrupt.requested
