"""Helpers for tests that drive the search as a separate process and watch its study."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

ROOT = Path(__file__).resolve().parents[2]


def start_search(args: list[str], cwd: Path, env: dict[str, str | None] | None = None) -> subprocess.Popen:
    return start_python(["-m", "search", "run", *args], cwd, env)


def start_python(args: list[str], cwd: Path, env: dict[str, str | None] | None = None) -> subprocess.Popen:
    """``python ARGS`` with this checkout importable, in a session of its own (signals reach
    only it), output captured as text. ``env`` overrides this process's environment (a None
    value removes the variable)."""
    full_env: dict[str, str] = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    full_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def study_states(run_dir: Path) -> dict[int, tuple[str, float | None]]:
    """trial number -> (state name, value), read from the run's journal without writing."""
    path = run_dir / "study.journal"
    if not path.exists():
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    summaries = optuna.get_all_study_summaries(storage)
    if not summaries:
        return {}
    study = optuna.load_study(study_name=summaries[0].study_name, storage=storage)
    return {t.number: (t.state.name, t.value) for t in study.get_trials(deepcopy=False)}


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None, step: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"search ended early (rc {proc.returncode}):\n{out}\n{err}")
        time.sleep(step)
    raise AssertionError("timed out waiting")


def completed(run_dir: Path) -> dict[int, float | None]:
    return {n: v for n, (s, v) in study_states(run_dir).items() if s == "COMPLETE"}


def training_on(node) -> bool:
    """Whether a Ray node (from ``ray.cluster_utils``) runs a trial right now.

    A trial's actor is a worker process under that node's raylet, titled ``ray::<class>.train``
    while it trains (``ray::IDLE`` or plain ``ray::<class>`` otherwise).
    """
    from ray._private import ray_constants

    raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    for child in psutil.Process(raylet).children(recursive=True):
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:  # it ended while we looked
            continue
        if title.startswith("ray::") and title.split()[0].endswith(".train"):
            return True
    return False
