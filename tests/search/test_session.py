"""The local Ray's session dirs: removed at the end of a run (see test_search_run), and the ones
a killed driver left behind swept by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from search.driver.session import KEPT, PREFIX, sweep_stale


def _session(root: Path, name: str, age_s: float) -> Path:
    path = root / f"{PREFIX}{name}"
    (path / "session_x" / "logs").mkdir(parents=True)
    (path / "session_x" / "logs" / "raylet.out").write_text("log\n")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_sweep_removes_only_old_unused_unkept_dirs(tmp_path: Path) -> None:
    old = _session(tmp_path, "old", 7200)
    fresh = _session(tmp_path, "fresh", 60)
    kept = _session(tmp_path, "kept", 7200)
    (kept / KEPT).touch()
    os.utime(kept, (time.time() - 7200,) * 2)
    live = _session(tmp_path, "live", 7200)
    other = tmp_path / "not-ours"
    other.mkdir()
    os.utime(other, (time.time() - 7200,) * 2)
    # A process naming the dir on its command line, as a running Ray's processes do.
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(live)])
    try:
        removed = sweep_stale(tmp_path, older_than_s=3600)
    finally:
        proc.kill()
        proc.wait()
    assert removed == [old]
    assert not old.exists()
    assert fresh.is_dir() and kept.is_dir() and live.is_dir() and other.is_dir()
    assert (live / "session_x" / "logs" / "raylet.out").read_text() == "log\n"


def test_sweep_with_nothing_to_sweep(tmp_path: Path) -> None:
    assert sweep_stale(tmp_path) == []
    fresh = _session(tmp_path, "fresh", 0)
    assert sweep_stale(tmp_path) == [] and fresh.is_dir()
