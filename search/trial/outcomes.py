"""What the training loop takes and gives, beside the configs and the data: a member's outcome
(:class:`TrainResult`, its :class:`Status`), what a pack reports after each epoch
(:class:`EpochReport`, through a :data:`PackReport`), the members that join a running pack
(:class:`Joiner`, from a :data:`Refill`), and a diverged member's error.
``search.trial.train`` is the loop that uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from router_models import BaseModel


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or inf."""


class Status(str, Enum):
    """A member's fate: ``training`` while in the pack; then ``complete`` (all epochs),
    ``stopped`` (its report asked it to stop, e.g. a pruned trial) or ``failed``."""

    TRAINING = "training"
    COMPLETE = "complete"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass
class TrainResult:
    """One member's outcome: its best model (weights loaded, eval mode) and its story.

    ``status`` is COMPLETE, STOPPED or FAILED (``error`` says why; ``model`` is None).
    """

    model: BaseModel | None
    best_epoch: int
    best_value: float
    epochs_run: int
    status: Status = Status.COMPLETE
    error: str | None = None
    history: list[dict[str, float]] = field(default_factory=list)
    train_config: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped_early(self) -> bool:
        return self.status == Status.STOPPED


@dataclass
class EpochReport:
    """What a pack reports after an epoch (``epoch`` counts the pack's epochs): metrics of the
    members still training, the members that failed in it, and each reported member's own
    epoch (``steps``: a member that joined later is at an earlier one), all by member id
    (``train_pack``'s ``ids``, a joiner's own; by default the config's position, joiners
    numbered on after them)."""

    epoch: int
    metrics: dict[int, dict[str, float]]
    failed: dict[int, str] = field(default_factory=dict)
    steps: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Joiner:
    """A member that takes a freed slot of a running pack (``refill``): it starts from epoch 0.
    ``id``: its id in every later report (a trial number); None: its position."""

    config: Mapping[str, Any]
    seed: int
    name: str
    id: int | None = None


Refill = Callable[[], Sequence[Joiner]]
"""Called after each epoch's report: the members that join the pack now (none: ``()``)."""


PackReport = Callable[[EpochReport], Iterable[int]]
"""The one report protocol: called after each epoch; returns the members to stop (e.g. pruned),
by member id. A report that never stops anyone returns ``()``."""
