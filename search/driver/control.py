"""The one channel from the driver back into running packs: which members stop, which join.

Ray Tune can only continue or stop a whole Tune trial, but a pack is several Optuna trials and
the pruner decides about each. After each epoch's report the driver posts the pack's closed
members (pruned, failed) here, and with refill the new trials that take their slots (as
:class:`~search.trial.protocol.Member` dicts); the pack waits for that epoch's word before its next
epoch, so a pruned member costs no compute after the epoch it was pruned at, as an unpacked
trial would, and a freed slot trains again from the next epoch. A Tune function trial's report
already waits for the driver to take it, so the wait is short.
"""

from __future__ import annotations

import asyncio
from typing import Any


class PackControl:
    """Per pack (Tune trial id): the members closed so far and the last epoch decided."""

    def __init__(self) -> None:
        self.closed: dict[str, set[int]] = {}
        self.joined: dict[str, list[dict[str, Any]]] = {}  # Member dicts, in the order they joined
        self.epoch: dict[str, int] = {}
        self.changed: dict[str, asyncio.Event] = {}

    def _event(self, pack: str) -> asyncio.Event:
        return self.changed.setdefault(pack, asyncio.Event())

    async def decide(
        self, pack: str, epoch: int, closed: list[int], joined: list[dict[str, Any]] | None = None
    ) -> None:
        """The driver's word after ``epoch``: ``closed`` members leave (closed ones stay closed),
        ``joined`` members (Member dicts) join."""
        self.closed.setdefault(pack, set()).update(closed)
        self.joined.setdefault(pack, []).extend(joined or ())
        self.epoch[pack] = max(epoch, self.epoch.get(pack, 0))
        event = self._event(pack)
        event.set()
        self.changed[pack] = asyncio.Event()

    async def wait(self, pack: str, epoch: int, timeout: float) -> dict[str, list[Any]]:
        """Once ``epoch`` is decided (or when ``timeout`` seconds pass): the :meth:`roster`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.epoch.get(pack, 0) < epoch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._event(pack).wait(), remaining)
            except asyncio.TimeoutError:
                break
        return await self.roster(pack)

    async def roster(self, pack: str) -> dict[str, list[Any]]:
        """``closed``: the members closed so far; ``joined``: every member that joined (a pack
        restarted after its node died skips the closed and takes the joined that are not)."""
        return {"closed": sorted(self.closed.get(pack, ())), "joined": list(self.joined.get(pack, ()))}


def start_control() -> Any:
    """The control actor, on the driver's node, taking no CPU from trials."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    actor = ray.remote(PackControl).options(num_cpus=0, scheduling_strategy=here)
    return actor.remote()
