"""The Ray Tune function of one Tune trial: a pack of Optuna trials trained as one model.

Data comes zero-copy from the object store; ``train_pack`` trains every member; after each epoch
one report carries every member's metrics, then the pack waits for the driver's word on which
members leave (pruned) and, with refill, which new trials take the freed slots. Each member
that completes saves its own router.
"""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from typing import Any

import numpy as np
import ray
import torch
from ray import tune

from router_models import save_router
from search.data import RouterData
from search.data.options import ENCODER_PARAM
from search.errors import first_line
from search.files.remote import put_file
from search.files.rundir import trial_router_uri
from search.routing.inference import val_logits
from search.routing.offsets import margin_routing
from search.trial.config import trial_seed
from search.trial.protocol import (
    SAVE_FAILED,
    EpochResult,
    Member,
    PackFailed,
    PackResult,
    PackSpec,
    TrialSettings,
)
from search.trial.train import EpochReport, Joiner, MemberConfigError, TrainResult, train_pack

DECISION_TIMEOUT_S = 120.0  # a driver that stays silent this long is gone; train on


def pick_device(gpu_fraction: float | None) -> torch.device:
    """The trial's GPU slice when Ray gave it one and CUDA is present, else the CPU.

    A logical GPU on a machine without CUDA trains on CPU; a real one gets its memory capped to
    the trial's fraction, so trials sharing a GPU cannot starve each other.
    """
    if gpu_fraction and torch.cuda.is_available() and ray.get_gpu_ids():
        device = torch.device("cuda", 0)  # Ray sets CUDA_VISIBLE_DEVICES to the trial's GPU
        torch.cuda.set_per_process_memory_fraction(min(1.0, gpu_fraction), device)
        torch.cuda.reset_peak_memory_stats(device)
        return device
    return torch.device("cpu")


def _first_line(exc: BaseException, debug: bool) -> str:
    message = first_line(exc, typed=True)
    return message + ("\n" + traceback.format_exc() if debug else "")


def router_trainable(
    config: dict[str, Any], data: dict[str, Any] | None = None, settings: TrialSettings | None = None
) -> None:
    """Train one pack (``config`` is a :class:`PackSpec`); report an :class:`EpochResult` after
    every epoch and a :class:`PackResult` at the end; save each completed member's router."""
    assert data is not None and settings is not None
    torch.set_num_threads(max(1, int(settings.cpus)))
    device = pick_device(settings.gpu)
    node_id = ray.get_runtime_context().get_node_id()
    tune_id = tune.get_context().get_trial_id()
    started = time.time()  # when training began on its node (a pack may wait for resources first)
    control = settings.control
    spec = PackSpec.from_config(config)
    members = list(spec.members)
    # One encoder per pack (the packer keys packs by it): its embeddings, "" when none is chosen.
    encoder = members[0].config["pipeline_config"].get(ENCODER_PARAM, "")
    router_data = RouterData(**data[encoder])  # numpy views of the object store, zero-copy
    known = {m.number for m in members}
    joining: list[Member] = []  # joined through the control actor, not yet in the pack

    def take(roster: dict[str, list[Any]]) -> set[int]:
        """The roster's closed members; its joined ones not yet known wait to join."""
        closed = set(roster["closed"])
        for raw in roster["joined"]:
            m = Member(int(raw["number"]), raw["config"])
            if m.number not in known and m.number not in closed:
                known.add(m.number)
                joining.append(m)
        return closed

    if control is not None:  # a pack restarted after its node died skips closed members
        closed = take(ray.get(control.roster.remote(tune_id)))
        members = [m for m in members if m.number not in closed] + joining
        joining.clear()
    failed: dict[int, str] = {}
    complete: dict[int, int] = {}  # saved: best epoch; said in the next report and at the end
    unsaid: set[int] = set()  # completed since the last report
    numbers: list[int] = []  # member index -> trial number, joiners appended as they join
    tmp = tempfile.TemporaryDirectory()

    def report(rep: EpochReport) -> list[int]:
        message = EpochResult(
            rep.epoch,
            {numbers[k]: m for k, m in rep.metrics.items()},
            {
                **{numbers[k]: msg for k, msg in rep.failed.items()},
                **{n: failed[n] for n in unsaid if n in failed},
            },
            node_id,
            str(device),
            started,
            {numbers[k]: s for k, s in rep.steps.items() if s != rep.epoch},
            {n: complete[n] for n in unsaid if n in complete},
        )
        unsaid.clear()
        tune.report(message.to_result())
        if control is None or not (rep.metrics or rep.failed):
            return []
        closed = take(ray.get(control.wait.remote(tune_id, rep.epoch, DECISION_TIMEOUT_S)))
        return [k for k, n in enumerate(numbers) if n in closed]

    def refill() -> list[Joiner]:
        out = [Joiner(m.config, trial_seed(settings.seed, m.number), f"trial {m.number}") for m in joining]
        numbers.extend(m.number for m in joining)
        joining.clear()
        return out

    def done(index: int, result: TrainResult) -> None:
        """A member ran every epoch: its router is saved now, not when the pack ends."""
        number = numbers[index]
        error = _save(result, number, router_data, settings, tmp.name)
        if error is None:
            complete[number] = result.best_epoch
        else:
            failed[number] = error
        unsaid.add(number)

    results: list[TrainResult] = []
    try:
        while members:
            numbers[:] = [m.number for m in members]
            try:
                results = train_pack(
                    [m.config for m in members],
                    router_data,
                    device=device,
                    report=report,
                    seeds=[trial_seed(settings.seed, m.number) for m in members],
                    metric=settings.metric,
                    names=[f"trial {m.number}" for m in members],
                    refill=refill if control is not None else None,
                    fidelity=settings.fidelity,
                    latency=settings.latency,
                    done=done,
                )
                break
            except MemberConfigError as exc:  # that member fails alone; the others train
                failed[members[exc.index].number] = f"ConfigError: {exc}"
                members.pop(exc.index)
    except Exception as exc:  # recorded as FAIL in the study; the search goes on
        tune.report(PackFailed(_first_line(exc, settings.debug), node_id).to_result())
        return
    finally:
        tmp.cleanup()

    for number, result in zip(numbers, results):
        if result.status == "failed":
            failed[number] = result.error or "failed"
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    tune.report(PackResult(complete, failed, peak, len(numbers), node_id).to_result())


def _save(
    result: TrainResult, number: int, data: RouterData, settings: TrialSettings, tmp: str
) -> str | None:
    """Save a completed member's router to the run's storage; the error line if it could not."""
    assert result.model is not None
    local = os.path.join(tmp, f"router_{number}.pt")
    model = result.model.cpu()
    try:
        save_router(
            model,
            local,
            **data.saved_with(),
            train_config=result.train_config,
            routing=margin_routing(val_logits(model, data), data),
            trial_number=number,
            best_epoch=result.best_epoch,
            best_value=result.best_value,
        )
        put_file(local, trial_router_uri(settings.storage, number))
    except OSError as exc:  # a full or unreachable storage: the member fails alone, said
        return f"{SAVE_FAILED}: {_first_line(exc, False)}"
    finally:
        if os.path.exists(local):
            os.remove(local)
    return None


def data_payload(data: RouterData) -> dict[str, Any]:
    """The arrays sent once to the object store (contiguous numpy, read back zero-copy)."""
    out = data.arrays()
    for key in ("X", "Y", "mask"):
        out[key] = np.ascontiguousarray(out[key])
    return out
