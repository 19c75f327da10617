"""Calls that must answer within seconds (a cluster's GCS, a storage URI): run in a daemon
thread, given up on after a timeout."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def in_thread(fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
    """``(finished, result or exception)``; a call still blocked after ``timeout`` is left
    behind (a daemon thread ends with the process)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return False, None
    return True, box.get("error", box.get("result"))
