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
from search.data.data_options import ENCODER_PARAM
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
from search.trial.train import EpochReport, Joiner, TrainResult, train_pack

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


class PackTrainable:
    """One Tune trial: a pack of Optuna trials trained as one model, its members named by trial
    number from start to end (in the loop, in every report, in the study). Its methods are the
    training loop's callbacks: ``report`` after each epoch (to Tune, then the driver's word on
    who leaves), ``refill`` (who joins) and ``done`` (a member ran every epoch: its router is
    saved now).

    Args:
        spec: The pack Tune asked for. data: The run's data by encoder (numpy, zero-copy).
        settings: What every trial of the run shares (device slice, storage, metric, seed...).
    """

    def __init__(self, spec: PackSpec, data: dict[str, Any], settings: TrialSettings) -> None:
        self.settings = settings
        self.device = pick_device(settings.gpu)
        self.node_id = ray.get_runtime_context().get_node_id()
        self.tune_id = tune.get_context().get_trial_id()
        self.started = time.time()  # when training began on its node (a pack may wait first)
        self.control = settings.control
        self.members = list(spec.members)
        # One encoder per pack (the packer keys packs by it): its embeddings, "" when none is chosen.
        encoder = self.members[0].config["pipeline_config"].get(ENCODER_PARAM, "")
        self.data = RouterData(**data[encoder])  # numpy views of the object store, zero-copy
        self.known = {m.number for m in self.members}
        self.joining: list[Member] = []  # joined through the control actor, not yet in the pack
        self.failed: dict[int, str] = {}
        self.complete: dict[int, int] = {}  # saved: best epoch; said in the next report and at the end
        self.unsaid: set[int] = set()  # completed since the last report
        self.order: list[int] = []  # trial numbers in the order train_pack returns results
        self.tmp = ""

    def _roster(self, roster: dict[str, list[Any]]) -> set[int]:
        """The roster's closed members; its joined ones not yet known wait to join."""
        closed = set(roster["closed"])
        for raw in roster["joined"]:
            m = Member(int(raw["number"]), raw["config"])
            if m.number not in self.known and m.number not in closed:
                self.known.add(m.number)
                self.joining.append(m)
        return closed

    def report(self, rep: EpochReport) -> list[int]:
        """Tell Tune the epoch; returns the members (trial numbers) the driver closed."""
        failed = {**rep.failed, **{t: self.failed[t] for t in self.unsaid if t in self.failed}}
        message = EpochResult(
            rep.epoch,
            rep.metrics,
            failed,
            self.node_id,
            str(self.device),
            self.started,
            {t: s for t, s in rep.steps.items() if s != rep.epoch},
            {t: self.complete[t] for t in self.unsaid if t in self.complete},
        )
        self.unsaid.clear()
        tune.report(message.to_result())
        if self.control is None or not (rep.metrics or rep.failed):
            return []
        closed = self._roster(ray.get(self.control.wait.remote(self.tune_id, rep.epoch, DECISION_TIMEOUT_S)))
        return sorted(closed & set(self.order))

    def refill(self) -> list[Joiner]:
        """The members the driver asked to join since the last epoch."""
        seed = self.settings.seed
        out = [
            Joiner(m.config, trial_seed(seed, m.number), f"trial {m.number}", m.number) for m in self.joining
        ]
        self.order.extend(m.number for m in self.joining)
        self.joining.clear()
        return out

    def done(self, number: int, result: TrainResult) -> None:
        """A member ran every epoch: its router is saved now, not when the pack ends."""
        error = _save(result, number, self.data, self.settings, self.tmp)
        if error is None:
            self.complete[number] = result.best_epoch
        else:
            self.failed[number] = error
        self.unsaid.add(number)

    def run(self) -> None:
        """Train the pack; report a :class:`PackResult` at the end (a :class:`PackFailed` when
        the pack itself failed: recorded as FAIL in the study, and the search goes on)."""
        torch.set_num_threads(max(1, int(self.settings.cpus)))
        if self.control is not None:  # a pack restarted after its node died skips closed members
            closed = self._roster(ray.get(self.control.roster.remote(self.tune_id)))
            self.members = [m for m in self.members if m.number not in closed] + self.joining
            self.joining.clear()
        self.order = [m.number for m in self.members]
        settings = self.settings
        try:
            with tempfile.TemporaryDirectory() as tmp:
                self.tmp = tmp
                results = train_pack(
                    [m.config for m in self.members],
                    self.data,
                    device=self.device,
                    report=self.report,
                    seeds=[trial_seed(settings.seed, m.number) for m in self.members],
                    metric=settings.metric,
                    names=[f"trial {m.number}" for m in self.members],
                    refill=self.refill if self.control is not None else None,
                    fidelity=settings.fidelity,
                    latency=settings.latency,
                    done=self.done,
                    ids=[m.number for m in self.members],
                )
        except Exception as exc:  # recorded as FAIL in the study; the search goes on
            tune.report(PackFailed(_first_line(exc, settings.debug), self.node_id).to_result())
            return
        for number, result in zip(self.order, results):
            if result.status == "failed":
                self.failed[number] = result.error or "failed"
        dev = self.device
        peak = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        tune.report(PackResult(self.complete, self.failed, peak, len(self.order), self.node_id).to_result())


def router_trainable(
    config: dict[str, Any], data: dict[str, Any] | None = None, settings: TrialSettings | None = None
) -> None:
    """Tune's function for one trial: train the pack ``config`` asks for (a :class:`PackSpec`)."""
    assert data is not None and settings is not None
    PackTrainable(PackSpec.from_config(config), data, settings).run()


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
