"""What one epoch trains on: all of the train questions, or (data as a fidelity) a nested subset.

With ``search.fidelity.resource: data`` a member's early epochs train on seeded, nested subsets
of the train questions: epoch ``e`` on the first ``schedule[e-1]`` of one fixed permutation of
them (the same for every member of a run, so every member at epoch ``e`` has seen the same
questions), growing geometrically from ``min_fraction`` at epoch 1 to all of them at
``full_epoch`` and after. The pruner compares members at equal epochs, so at equal data; the
study records the schedule (``data_schedule``), so a step's resource can be read back.

Who calls what: the space builds a :class:`Fidelity` from YAML; the driver passes it to every
pack in :class:`~search.trial.protocol.TrialSettings`; the training loop asks :meth:`Fidelity.rows`
for each epoch's rows (each cohort of a pack at its own epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a tensor is cut, not with the messages that carry this
    import torch

RESOURCES = ("epochs", "data")


@dataclass(frozen=True)
class Fidelity:
    """How much of the train set each epoch trains on.

    Args:
        resource: ``epochs`` (every epoch trains on all questions) or ``data``.
        min_fraction: The share of the train questions epoch 1 trains on (``data``), in (0, 1].
        full_epoch: The first epoch that trains on all of them (>= 1).
        seed: Seeds the one permutation the nested subsets are cut from.
    """

    resource: str = "epochs"
    min_fraction: float = 1.0
    full_epoch: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ValueError(f"resource must be one of {', '.join(RESOURCES)}, got {self.resource!r}")
        if not 0.0 < self.min_fraction <= 1.0:
            raise ValueError(f"min_fraction must be in (0, 1], got {self.min_fraction!r}")
        if self.full_epoch < 1:
            raise ValueError(f"full_epoch must be >= 1, got {self.full_epoch!r}")

    @property
    def on(self) -> bool:
        return self.resource == "data" and self.min_fraction < 1.0 and self.full_epoch > 1

    def fraction(self, epoch: int) -> float:
        """The share of the train questions epoch ``epoch`` (1-based) trains on."""
        if not self.on or epoch >= self.full_epoch:
            return 1.0
        growth = (1.0 / self.min_fraction) ** (1.0 / (self.full_epoch - 1))
        return min(1.0, self.min_fraction * growth ** (epoch - 1))

    def size(self, epoch: int, n: int) -> int:
        """How many of ``n`` train questions epoch ``epoch`` trains on (at least one)."""
        return n if not self.on else max(1, min(n, round(n * self.fraction(epoch))))

    def schedule(self, epochs: int, n: int) -> list[int]:
        """Questions per epoch, epochs 1..``epochs``: what the study records."""
        return [self.size(e, n) for e in range(1, epochs + 1)]

    def order(self, train_idx: torch.Tensor) -> torch.Tensor:
        """``train_idx`` in the fixed order the subsets are cut from (a prefix is a subset)."""
        if not self.on:
            return train_idx
        import torch

        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        return train_idx[torch.randperm(train_idx.numel(), generator=gen).to(train_idx.device)]

    def rows(self, ordered: torch.Tensor, epoch: int, gen: torch.Generator) -> torch.Tensor:
        """Epoch ``epoch``'s rows in a fresh shuffled order: a prefix of ``ordered`` (from
        :meth:`order`), shuffled by ``gen`` (which draws one permutation per epoch)."""
        import torch

        k = self.size(epoch, ordered.numel())
        return ordered[:k][torch.randperm(k, generator=gen).to(ordered.device)]
