"""The Ray a run uses: our own local instance, or a cluster at an address (``cluster.py``).

A local instance binds to 127.0.0.1 (through the environment ``run_trials`` sets before ray is
imported) and keeps its session (Ray's logs, sockets, spilled objects; about 1.5 MB a run) in a
dir of its own under /tmp, removed when the run ends. A driver killed outright cannot remove
its dir; the next local run sweeps such leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from search.driver.cluster import connect
from search.log import logger

if TYPE_CHECKING:
    from search.driver.plan import RunPlan

# /tmp, not the user's TMPDIR: Ray's socket paths must stay under the AF_UNIX length limit.
TEMP_ROOT = Path("/tmp")
PREFIX = "rs-ray-"
KEPT = "KEPT"  # marks a dir kept on purpose (--debug); no sweep removes it
STALE_AFTER_S = 3600.0
_local_dirs: list[Path] = []

log = logger("driver")


@contextlib.contextmanager
def process_state() -> Iterator[None]:
    """Leave the process as it was: the environment (Ray and Tune read settings from it, so a
    run sets some) and the log levels a run quiets."""
    env = dict(os.environ)
    loggers = {name: logging.getLogger(name).level for name in QUIETED_LOGGERS}
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(env)
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)


# Tune's own experiment snapshot is not what a resume reads (the study is); when it cannot be
# saved (a full disk) the run says so once, in our words, not Tune's traceback at every snapshot.
QUIETED_LOGGERS = ("ray.tune.execution.experiment_state", "ray.tune")


def ray_is_up() -> bool:
    """Whether this process is connected to a Ray (started here or joined), without importing
    Ray when nothing did yet."""
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def start_ray(plan: RunPlan) -> None:
    """Start a local Ray of our own, or join the cluster at ``plan.address``; the run that
    calls it shuts it down at its end (``run_search``)."""
    import ray

    level = logging.INFO if plan.verbose else logging.ERROR
    if plan.address is not None:
        connect(plan.address, level, plan.verbose)
        return
    # Our own instance: never attach to a cluster found on this machine.
    sweep_stale()
    tmp = Path(tempfile.mkdtemp(prefix=PREFIX, dir=TEMP_ROOT))
    _local_dirs.append(tmp)
    ray.init(
        address="local",
        include_dashboard=False,
        _temp_dir=str(tmp),
        logging_level=level,
        log_to_driver=plan.verbose,
    )


def stop_ray(keep_logs: bool = False) -> None:
    """Shut Ray down; a local instance's dir goes with it, or with ``keep_logs`` (``--debug``)
    stays, marked as kept, and is named."""
    import ray

    ray.shutdown()
    while _local_dirs:
        tmp = _local_dirs.pop()
        if keep_logs:
            (tmp / KEPT).touch()
            log.info(f"Ray's logs of this run are kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def sweep_stale(root: Path = TEMP_ROOT, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the local session dirs that runs left behind; returns those removed.

    A dir goes when it is this user's, unchanged for more than ``older_than_s`` seconds (so a run
    starting right now keeps its new one), not marked kept, and named by no running process (a
    live Ray names its session dir on its command lines).
    """
    import psutil

    now = time.time()
    candidates = []
    for path in root.glob(f"{PREFIX}*"):
        try:
            st = path.stat()
        except OSError:
            continue
        if path.is_dir() and st.st_uid == os.getuid() and now - st.st_mtime > older_than_s:
            if not (path / KEPT).exists():
                candidates.append(path)
    if not candidates:
        return []
    in_use: set[Path] = set()
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info.get("cmdline") or [])
        in_use.update(p for p in candidates if str(p) in line)
    removed = [p for p in candidates if p not in in_use]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
