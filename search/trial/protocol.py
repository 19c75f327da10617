"""The messages between the driver and the trainable of a Tune trial, defined once.

The driver sends a pack (:class:`PackSpec`, as the Tune trial's config) and the trial's
settings (:class:`TrialSettings`, once per run); the trainable answers through Tune's reports:
after each epoch an :class:`EpochResult` (every member still training, by trial number), at the
end a :class:`PackResult` (which members completed, which failed), or a :class:`PackFailed`
when the whole pack could not train. Tune's results hold scalars, so each message rides as one
JSON text under its own key (:meth:`to_result`), beside the scalars Tune itself reads;
:func:`decode` reads any of them back. Trial numbers are ints on both sides.

>>> m = EpochResult(epoch=2, metrics={7: {"val_loss": 0.5}}, failed={9: "diverged"}, node_id="n1")
>>> decode(m.to_result()) == m
True
>>> sorted(m.to_result())
['epoch', 'pack_epoch']
>>> decode({"epoch": 1}) is None
True
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from search.trial.fidelity import Fidelity

# The key each message rides under in a Tune result.
EPOCH_KEY = "pack_epoch"
FINAL_KEY = "pack_final"
ERROR_KEY = "pack_error"

# A member that trained but whose router storage refused: its trial is re-run on resume.
SAVE_FAILED = "could not save its router"


@dataclass(frozen=True)
class Member:
    """One Optuna trial of a pack: its number and the config.json dict it trains."""

    number: int
    config: dict[str, Any]


@dataclass(frozen=True)
class PackSpec:
    """A Tune trial's config: the pack's members, named by its lowest-numbered one."""

    leader: int
    members: tuple[Member, ...]

    def to_config(self) -> dict[str, Any]:
        return {"pack": self.leader, "members": [asdict(m) for m in self.members]}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PackSpec:
        members = tuple(Member(int(m["number"]), m["config"]) for m in config["members"])
        return cls(int(config["pack"]), members)


@dataclass(frozen=True)
class TrialSettings:
    """What every trainable of a run is given once (beside the data).

    Attributes:
        control: The actor that tells packs which members leave (None: nothing is pruned).
        cpus: CPU threads a pack trains with. gpu: Its GPU fraction (None: the CPU).
        seed: The search's seed (a member trains with ``trial_seed(seed, number)``).
        metric: Picks each member's best epoch. storage: Where routers are saved.
        debug: Failures carry their traceback.
        fidelity: What each epoch trains on (None: every train question).
        latency: Measure each member's router latency (an objective of the search).
    """

    control: Any
    cpus: float
    gpu: float | None
    seed: int
    metric: str
    storage: str
    debug: bool = False
    fidelity: Fidelity | None = None
    latency: bool = False


def _ints(d: dict[Any, Any]) -> dict[int, Any]:
    return {int(k): v for k, v in d.items()}


@dataclass(frozen=True)
class EpochResult:
    """After the pack's ``epoch``-th epoch: the metrics of every member still training and
    those that failed in it (by trial number), where the pack runs, when it began training
    there, each reported member's own epoch (``steps``; a member that joined a running pack is
    behind it; a member not named is at ``epoch``), and the members that ran every epoch since
    the last report, their routers saved (``complete``: each one's best epoch)."""

    epoch: int
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    node_id: str = ""
    device: str = ""
    started: float | None = None
    steps: dict[int, int] = field(default_factory=dict)
    complete: dict[int, int] = field(default_factory=dict)

    def step(self, number: int) -> int:
        """Member ``number``'s own epoch."""
        return self.steps.get(number, self.epoch)

    def to_result(self) -> dict[str, Any]:
        return {EPOCH_KEY: json.dumps(asdict(self)), "epoch": self.epoch}


@dataclass(frozen=True)
class PackResult:
    """The end of a pack: each completed member's best epoch, each failed member's reason,
    the pack's peak GPU memory (MB, None on a CPU), and how many members it trained (joiners
    included)."""

    complete: dict[int, int] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    gpu_mem_mb: float | None = None
    members: int = 0
    node_id: str = ""

    def to_result(self) -> dict[str, Any]:
        return {FINAL_KEY: json.dumps(asdict(self))}


@dataclass(frozen=True)
class PackFailed:
    """The whole pack failed (its process raised): one line, a traceback with ``debug``."""

    error: str
    node_id: str = ""

    def to_result(self) -> dict[str, Any]:
        return {ERROR_KEY: json.dumps(asdict(self))}


Message = EpochResult | PackResult | PackFailed


def decode(result: dict[str, Any] | None) -> Message | None:
    """The message a Tune result carries; None for a result that carries none (Tune's own).

    Raises:
        ValueError: A message key holds something that is not that message (a bug).
    """
    if not result:
        return None
    try:
        if EPOCH_KEY in result:
            raw = json.loads(result[EPOCH_KEY])
            ints = {k: _ints(raw.get(k, {})) for k in ("metrics", "failed", "steps", "complete")}
            return EpochResult(**{**raw, **ints})
        if FINAL_KEY in result:
            raw = json.loads(result[FINAL_KEY])
            return PackResult(**{**raw, "complete": _ints(raw["complete"]), "failed": _ints(raw["failed"])})
        if ERROR_KEY in result:
            return PackFailed(**json.loads(result[ERROR_KEY]))
    except (TypeError, KeyError, ValueError) as exc:
        raise ValueError(f"a malformed pack message: {exc}") from exc
    return None
