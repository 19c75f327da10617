"""The driver at cluster scale, simulated on this machine.

The real driver (the study in its journal, the packer, the bridge, Ray Tune and the control
actor) runs a search of many trials over many logical GPU slots (Ray's logical ``GPU``
resource: each pack takes one; nothing touches a device). Each pack is a stand-in trainable
that speaks the real protocol (an :class:`EpochResult` per epoch, the control actor's word on
who leaves and who joins, a :class:`PackResult` at the end), sleeps as long as a pack's epoch
would take, and reports a synthetic learning curve per member (a plateau set by its params,
noise seeded by its number), so the pruner prunes as in a real search.

Measured in the driver process: its CPU time per trial (``time.process_time``: Tune's loop,
the study, the packer, the bridge, Ray's client threads), the CPU time of our own calls (asks
and results through the bridge), asks/s and results/s, the delay between a pack ending and
the next starting on its slot, and each at 1,000 and at N trials (the growth); then the time to
resume the N-trial study from its journal (open, count, close the interrupted).

    python bench/scale.py --driver [--trials 1000,3000,10000] [--slots 64,256]
        The driver's own work without Ray: the study (its journal on disk), the packer and the
        bridge, driven by a loop that plays every slot's pack an epoch at a time (synthetic
        curves, refill on), as fast as the driver can; CPU per trial at each study size, the
        asks and results per second it sustains, and the resume.

    python bench/scale.py [--trials 2000] [--slots 64] [--pack-size 16] [--epoch-s 1]
        [--sampler random|tpe] [--no-refill]
        The same through Ray Tune: a stand-in trainable per pack (one process each; on this
        machine about 240 MB each, so 64 slots is as many as it holds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import write_yaml

EPOCHS = 12


def stand_in(config: dict[str, Any], data: dict[str, Any] | None = None, settings: Any = None) -> None:
    """A pack that trains nothing: the real messages, a sleep per epoch, synthetic curves."""
    import math
    import random

    import ray
    from ray import tune

    from search.trial.protocol import EpochResult, Member, PackResult, PackSpec

    spec = PackSpec.from_config(config)
    tune_id = tune.get_context().get_trial_id()
    control, epoch_s = settings.control, float(os.environ.get("SCALE_EPOCH_S", "0.5"))
    started = time.time()
    live: dict[int, int] = {m.number: 0 for m in spec.members}  # number -> its own epoch
    plateau = {m.number: _plateau(m) for m in spec.members}
    complete: dict[int, int] = {}
    unsaid: dict[int, int] = {}
    pack_epoch = 0
    while live:
        time.sleep(epoch_s)
        pack_epoch += 1
        metrics = {}
        for n in live:
            live[n] += 1
            noise = random.Random(n * 1000 + live[n]).gauss(0, 0.004)
            metrics[n] = {"val_auc": plateau[n] * (1 - math.exp(-live[n] / 3)) + noise, "train_loss": 0.5}
        steps = {n: e for n, e in live.items() if e != pack_epoch}
        tune.report(
            EpochResult(pack_epoch, metrics, {}, "sim", "sim", started, steps, dict(unsaid)).to_result()
        )
        unsaid.clear()
        word = ray.get(control.wait.remote(tune_id, pack_epoch, 120.0)) if control is not None else None
        closed = set(word["closed"]) if word else set()
        for n in [n for n, e in live.items() if n in closed or e >= EPOCHS]:
            if n not in closed:
                complete[n] = unsaid[n] = live[n]
            del live[n]
        for raw in word["joined"] if word else []:
            m = Member(int(raw["number"]), raw["config"])
            if m.number not in live and m.number not in complete and m.number not in closed:
                live[m.number], plateau[m.number] = 0, _plateau(m)
    tune.report({**PackResult(complete, {}, None, len(complete), "sim").to_result(), "ended": time.time()})


def _plateau(member: Any) -> float:
    """Where a member's curve levels off: best at lr 1e-3, by how far its lr is from there."""
    import math

    lr = float(member.config["pipeline_config"]["train_config"]["lr"])
    return 0.75 - 0.05 * abs(math.log10(lr) + 3.0)


def space(trials: int, slots: int, pack_size: int, sampler: str, refill: bool) -> dict[str, Any]:
    return {
        "model_type": "mlp",
        "params": {
            "hidden_dims": {"choices": [[64], [128]]},
            "dropout": {"low": 0.0, "high": 0.3},
            "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
            "batch_size": 64,
            "epochs": EPOCHS,
        },
        "search": {
            "num_samples": trials,
            "metric": "val_auc",
            "sampler": {"type": sampler},
            "pruner": {"type": "successive_halving", "min_resource": 2, "reduction_factor": 5},
            "max_concurrent_trials": slots,
            "pack_size": pack_size,
            "reproducible": False,
            "refill": refill,
            "ensemble": {"size": 0},
            "seed": 0,
        },
        "resources": {"cpu": 0.01, "gpu": 1},
        "data": {"synthetic": {"n_questions": 200, "n_models": 4, "dim": 8, "n_topics": 2, "seed": 1}},
    }


class Probe:
    """Our own driver calls, timed (CPU seconds of the driver's thread), and when packs end."""

    def __init__(self) -> None:
        from search.driver.bridge import OptunaBridge

        self.cpu = {"suggest": 0.0, "on_result": 0.0, "complete": 0.0}
        self.calls = {k: 0 for k in self.cpu}
        self.ended: list[float] = []
        self.starts: list[float] = []
        self.marks: list[tuple[float, float, int, int]] = []  # (wall, process cpu, asked, results)
        self.bridge: Any = None
        probe = self
        for name in self.cpu:
            real = getattr(OptunaBridge, name)

            def timed(bridge: Any, *args: Any, _real: Any = real, _name: str = name) -> Any:
                probe.bridge = bridge
                t = time.thread_time()
                out = _real(bridge, *args)
                probe.cpu[_name] += time.thread_time() - t
                probe.calls[_name] += 1
                if _name == "complete" and len(args) > 1 and args[1]:
                    probe.ended.append(float(args[1].get("ended", time.time())))
                if _name == "on_result" and len(args) > 1 and args[1].get("epoch") == 1:
                    probe.starts.append(time.time())
                return out

            setattr(OptunaBridge, name, timed)

    def sample(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            asked = self.bridge.asked if self.bridge is not None else 0
            self.marks.append((time.time(), time.process_time(), asked, self.calls["on_result"]))


def run(trials: int, slots: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import ray

    import search.trial.trainable as trainable
    from search.driver.plan import RunRequest, plan_run
    from search.driver.rundata import load_run_data
    from search.driver.tuner import run_trials
    from search.study.store import close_interrupted, counted_trials, open_study

    trainable.router_trainable = stand_in  # what run_trials trains
    os.environ["SCALE_EPOCH_S"] = str(args.epoch_s)
    name = f"s{slots}-n{trials}"
    path = write_yaml(tmp / f"{name}.yaml", space(trials, slots, args.pack_size, args.sampler, args.refill))
    plan = plan_run(RunRequest(space=str(path), out=str(tmp / name)))
    plan.run_dir.mkdir(parents=True)
    datas = load_run_data(plan)
    study = open_study(plan.run_dir, plan.space)
    ray.init(
        num_cpus=2,
        num_gpus=slots,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        _temp_dir=str(Path(tempfile.gettempdir()) / "rs-scale"),
    )
    probe, stop = Probe(), threading.Event()
    sampler = threading.Thread(target=probe.sample, args=(stop,), daemon=True)
    sampler.start()
    wall0, cpu0 = time.time(), time.process_time()
    try:
        run_trials(plan, study, datas, trials, packable=True)
    finally:
        stop.set()
        wall, cpu = time.time() - wall0, time.process_time() - cpu0
        ray.shutdown()
    done = counted_trials(study)
    # resume: the study read back from its journal, as a resumed run does before anything else
    t = time.perf_counter()
    again = open_study(plan.run_dir, plan.space)
    close_interrupted(again)
    counted_trials(again)
    resume_s = time.perf_counter() - t
    ends, starts = sorted(probe.ended), sorted(probe.starts)[slots:]
    delays = [s - e for e, s in zip(ends, starts) if s >= e]
    per_trial = [
        (m1[1] - m0[1]) / (m1[2] - m0[2]) * 1000
        for m0, m1 in zip(probe.marks, probe.marks[4:])
        if m1[2] > m0[2]
    ]
    window = max(1, len(per_trial) // 10)
    shutil.rmtree(plan.run_dir / "tune", ignore_errors=True)
    return {
        "trials": done,
        "wall": wall,
        "cpu_ms": 1000 * cpu / max(done, 1),
        "ours_ms": 1000 * sum(probe.cpu.values()) / max(done, 1),
        "ask_ms": 1000 * probe.cpu["suggest"] / max(probe.calls["suggest"], 1),
        "result_ms": 1000 * probe.cpu["on_result"] / max(probe.calls["on_result"], 1),
        "asks_s": done / wall,
        "results_s": probe.calls["on_result"] / wall,
        "packs": probe.calls["complete"],
        "delay_ms": 1000 * statistics.median(delays) if delays else None,
        "early_ms": statistics.median(per_trial[:window]) if per_trial else None,
        "late_ms": statistics.median(per_trial[-window:]) if per_trial else None,
        "resume_s": resume_s,
    }


def driver_loop(trials: int, slots: int, pack_size: int, tmp: Path) -> dict[str, Any]:
    """The study, packer and bridge playing ``slots`` packs an epoch at a time, no Ray."""
    import math
    import random

    import optuna

    from search.driver.bridge import OptunaBridge
    from search.driver.packer import Packer
    from search.space import parse_space
    from search.study.store import close_interrupted, counted_trials, open_study
    from search.trial.protocol import EpochResult, PackResult

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sim = parse_space(space(trials, slots, pack_size, "random", True))
    run_dir = tmp / f"driver-{slots}-{trials}"
    run_dir.mkdir()
    study = open_study(run_dir, sim)

    class Control:  # what the control actor would be told, kept for the loop to act on
        def __init__(self) -> None:
            self.word: dict[str, tuple[list[int], list[dict[str, Any]]]] = {}
            self.decide = self

        def remote(self, pack: str, epoch: int, closed: list[int], joined: list[dict[str, Any]]) -> None:
            self.word[pack] = (closed, joined)

    control = Control()
    bridge = OptunaBridge(
        study, sim, trials, Packer(study, sim, pack_size, 8, 4), control=control, refill=True
    )
    packs: dict[str, dict[int, int]] = {}  # Tune trial id -> member number -> its epoch
    made, results = 0, 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while True:
        while len(packs) < slots:  # a free slot starts a pack, as Tune would
            config = bridge.suggest(f"t{made}")
            if not isinstance(config, dict):
                break
            packs[f"t{made}"] = {m["number"]: 0 for m in config["members"]}
            made += 1
        if not packs:
            break
        for tid in list(packs):
            live = packs[tid]
            for n in live:
                live[n] += 1
            plateau = {n: 0.7 + 0.05 * random.Random(n).random() for n in live}
            metrics = {n: {"val_auc": plateau[n] * (1 - math.exp(-e / 3))} for n, e in live.items()}
            bridge.on_result(tid, EpochResult(max(live.values()), metrics, steps=dict(live)).to_result())
            results += 1
            closed, joined = control.word.pop(tid, ([], []))
            done = {n: e for n, e in live.items() if e >= EPOCHS and n not in closed}
            for n in [n for n in live if n in closed or n in done]:
                del live[n]
            live.update({j["number"]: 0 for j in joined})
            if live and done:  # said in the pack's next report
                bridge.on_result(tid, EpochResult(0, {}, complete=done).to_result())
            elif not live:
                bridge.complete(tid, PackResult(done, {}).to_result(), False)
                del packs[tid]
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    t = time.perf_counter()
    again = open_study(run_dir, sim)
    close_interrupted(again)
    done = counted_trials(again)
    resume_s = time.perf_counter() - t
    shutil.rmtree(run_dir, ignore_errors=True)
    return {
        "trials": done,
        "cpu_ms": 1000 * cpu / trials,
        "asks_s": trials / wall,
        "results_s": results / wall,
        "wall": wall,
        "resume_s": resume_s,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--driver", action="store_true", help="the driver's own work, no Ray")
    p.add_argument("--trials", default=None, help="trials (comma-separated with --driver)")
    p.add_argument("--slots", default=None)
    p.add_argument("--pack-size", type=int, default=16)
    p.add_argument("--epoch-s", type=float, default=1.0, help="seconds a pack's epoch sleeps")
    p.add_argument("--sampler", default="random", choices=["random", "tpe"])
    p.add_argument("--no-refill", dest="refill", action="store_false")
    p.add_argument("--sizes", default="1000", help="smaller studies, for the growth to N")
    args = p.parse_args()
    if args.driver:
        sizes = [int(s) for s in (args.trials or "1000,3000,10000").split(",")]
        print(
            f"the driver alone: packs of {args.pack_size}, refill on, successive halving (2, 5), "
            "random sampler"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for slots in (int(s) for s in (args.slots or "64,256").split(",")):
                for n in sizes:
                    r = driver_loop(n, slots, args.pack_size, Path(tmp))
                    print(
                        f"{slots} slots, {r['trials']} trials: driver CPU {r['cpu_ms']:.2f} ms/trial, "
                        f"{r['asks_s']:.0f} asks/s and {r['results_s']:.0f} pack results/s sustained, "
                        f"resume {r['resume_s']:.2f}s",
                        flush=True,
                    )
        return
    args.trials = int(args.trials or 2000)
    args.slots = args.slots or "64"
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    print(
        f"stand-in packs of {args.pack_size}, {EPOCHS} epochs of {args.epoch_s} s, successive halving "
        f"(2, 5), sampler {args.sampler}, refill {'on' if args.refill else 'off'}; driver on "
        f"{os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for slots in (int(s) for s in args.slots.split(",")):
            for n in [*(int(s) for s in args.sizes.split(",") if s and int(s) < args.trials), args.trials]:
                r = run(n, slots, args, Path(tmp))
                delay = f"{r['delay_ms']:.0f} ms" if r["delay_ms"] is not None else "-"
                print(
                    f"{slots} slots, {r['trials']} trials: wall {r['wall']:.1f}s, driver CPU "
                    f"{r['cpu_ms']:.2f} ms/trial (ours {r['ours_ms']:.2f}: ask {r['ask_ms']:.2f} ms, "
                    f"result {r['result_ms']:.2f} ms), {r['asks_s']:.0f} asks/s, {r['results_s']:.0f} "
                    f"results/s, {r['packs']} packs, slot refilled after {delay}; CPU per trial "
                    f"early {r['early_ms'] or 0:.2f} ms, late {r['late_ms'] or 0:.2f} ms; resume "
                    f"{r['resume_s']:.2f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
