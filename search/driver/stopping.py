"""Ending a run from the driver: Ctrl-C (the first stops every trial and saves the state, a
second exits at once), a deadline for the first pack to start (an autoscaling cluster that never
adds the node a pack needs), a study that cannot be written (a full disk). Tune's Stopper ends
the experiment; Tune saves it with the experiment, so it holds only a plain flag object."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from search.errors import DISK_ERRORS


def disk_error(exc: BaseException) -> OSError | None:
    """A full or read-only disk anywhere in ``exc``'s chain of causes."""
    seen: set[int] = set()
    node: BaseException | None = exc
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        if isinstance(node, OSError) and node.errno in DISK_ERRORS:
            return node
        node = node.__cause__ or node.__context__
    return None


class _Flag:
    """State shared with Tune's Stopper: Tune saves its stopper with the experiment, so the
    stopper must not hold the signal handlers (they may hold locks).

    ``deadline``: a monotonic time by which some pack must have reported (an autoscaling
    cluster may never add the node a pack needs); past it without a report, the run ends.
    """

    def __init__(self) -> None:
        self.requested = False
        self.started = False
        self.deadline: float | None = None
        self.timed_out = False
        self.fatal = False  # the study could not be written (a full disk)


class Interrupt:
    """Ctrl-C: the first asks Tune to stop every trial and end; a second exits the process at
    once with ``hard_exit`` (the command line), else raises KeyboardInterrupt where the run is
    (a notebook's kernel lives on). Outside the main thread no handler can be set: Ctrl-C is
    then Python's own."""

    def __init__(self, hard_exit: bool = False) -> None:
        self.flag = _Flag()
        self.hard_exit = hard_exit
        self._previous: Any = None
        self._installed = False

    @property
    def requested(self) -> bool:
        return self.flag.requested

    def __enter__(self) -> Interrupt:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)

    def stopper(self) -> Any:
        """A Tune Stopper that ends the whole experiment once Ctrl-C was pressed."""
        from ray import tune

        flag = self.flag

        class StopOnInterrupt(tune.Stopper):
            def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
                flag.started = True
                return False

            def stop_all(self) -> bool:
                if flag.deadline is not None and not flag.started and time.monotonic() > flag.deadline:
                    flag.timed_out = True
                return flag.requested or flag.timed_out or flag.fatal

        return StopOnInterrupt()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.flag.requested:
            if not self.hard_exit:
                raise KeyboardInterrupt
            # a signal handler: os.write, which takes no lock (logging's or a stream's could be
            # held by the code the signal interrupted)
            os.write(2, b"\nforced exit\n")
            os._exit(130)
        self.flag.requested = True
        os.write(2, b"\nstopping: ending running trials and saving state (Ctrl-C again to force exit)\n")
