"""Which way is better, for every metric: the one place that says it.

A metric's direction is ``min`` or ``max`` (:data:`METRIC_MODES`); a :class:`Direction` turns
values into keys where lower is always better (``key``), compares them (``better``, ``best``),
and names itself as Optuna does (``optuna``). The trainer keeps each member's best epoch with
it, the bridge each trial's best metrics, ensemble selection its scores, the results their
order.

>>> d = Direction.of("val_route_acc")
>>> d.mode, d.maximize, d.optuna
('max', True, 'maximize')
>>> d.better(0.7, 0.6), d.best([0.6, 0.7, 0.65]), d.key(0.7)
(True, 0.7, -0.7)
>>> Direction.of("val_loss").best([0.5, 0.4])
0.4
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

# Metrics reported per epoch, and which way is better for each.
METRIC_MODES: dict[str, str] = {
    "val_loss": "min",
    "val_correctness_acc": "max",
    "val_auc": "max",
    "val_route_acc": "max",
    "val_aiq": "max",  # only for data with costs
    "val_cost": "min",  # mean LLM cost per val query at the router's routing; data with costs
    "train_loss": "min",
    "param_count": "min",  # the router's parameters
    "router_latency_ms": "min",  # one query's forward pass on the trial's device (when asked)
}
# Metrics of a router's architecture, not of its training: the same at every epoch, so no
# epoch is better by them (a trial's best epoch is picked by a metric that training changes).
ARCHITECTURE_METRICS = ("param_count", "router_latency_ms")
# Metrics only data with costs has.
COST_METRICS = ("val_aiq", "val_cost")
MODES = ("min", "max")


@dataclass(frozen=True)
class Direction:
    """``min`` or ``max``: which values of a metric are better."""

    mode: str

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")

    @classmethod
    def of(cls, metric: str) -> Direction:
        """The direction of a reported metric.

        Raises:
            KeyError: ``metric`` is not one of :data:`METRIC_MODES`.
        """
        return cls(METRIC_MODES[metric])

    @classmethod
    def of_study(cls, study: Any) -> Direction:
        """The direction of an Optuna study (its ``direction``'s name)."""
        return cls("max" if study.direction.name == "MAXIMIZE" else "min")

    @classmethod
    def each_of_study(cls, study: Any) -> list[Direction]:
        """The direction of each objective of an Optuna study (its ``directions``)."""
        return [cls("max" if d.name == "MAXIMIZE" else "min") for d in study.directions]

    @property
    def maximize(self) -> bool:
        return self.mode == "max"

    @property
    def optuna(self) -> Literal["minimize", "maximize"]:
        """The name Optuna gives this direction (``create_study(direction=...)``)."""
        return "maximize" if self.maximize else "minimize"

    def key(self, value: float) -> float:
        """``value`` as a key where lower is better (negated for ``max``)."""
        return -value if self.maximize else value

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.key(a) < self.key(b)

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (at least one)."""
        return min(values, key=self.key)
