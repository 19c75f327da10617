"""One driver per run dir: a lock taken before anything is written and held for the run.

The lock is the file ``RUN_DIR/.lock``, held with ``flock``, which the kernel drops when the
driver dies however it dies, and which Linux carries between machines on NFS (as a lock of the
whole file, through NFS's lock manager). It belongs to the open file, not the process: a second
driver in the same process (a notebook) is refused too. The file says who holds it (host, pid,
since when, the command), so a second driver is refused in one line naming the holder.
Whoever takes a lock whose file names someone else took it over from a driver that is gone,
and says so.

Fallback for file systems that do not carry locks between machines: the holder touches the
file every ``HEARTBEAT_S``; a driver on another host that gets the lock but finds the
file touched less than ``STALE_AFTER_S`` ago by another host still refuses. What remains open
there is two drivers on two machines starting within the same second.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

from search.errors import UserError
from search.files.rundir import RunDir

HEARTBEAT_S = 15.0
STALE_AFTER_S = 120.0


class RunDirInUse(UserError):
    """Another live driver holds the run dir."""


def describe_holder(holder: dict[str, object]) -> str:
    since = holder.get("since")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, (int, float)) else "?"
    )
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {when}"


def _read_holder(fd: int) -> dict[str, object]:
    try:
        raw = os.pread(fd, 4096, 0)
        holder = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """The lock of one run dir; a context manager.

    Args:
        run_dir: The run dir (made when missing; removed again on release when the lock was
            all that was written in it).
        new: The dir must not exist yet (a default name): ``acquire`` raises FileExistsError
            when it does, and the caller picks another name.

    Raises (from ``acquire``):
        RunDirInUse: Another live driver holds it; the message names the holder.
        FileExistsError: With ``new``, the dir exists.
        OSError: The lock file cannot be written (a full or read-only disk).
    """

    def __init__(self, run_dir: Path, new: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.new = new
        self.path = RunDir(self.run_dir).lock
        self.took_over: dict[str, object] | None = None  # the dead driver's record, if any
        self._fd: int | None = None
        self._made: list[Path] = []  # the run dir and the parents this lock made, deepest first
        self._made_once: list[Path] = []  # the same, kept after keep_dir (for forget_run)
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- taking it -----------------------------------------------------------------------
    def acquire(self) -> RunLock:
        if self.new or not self.run_dir.exists():
            missing = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]
            self.run_dir.mkdir(parents=True)  # exclusive: two drivers cannot both make it
            self._made = missing
            self._made_once = list(missing)
        try:
            for _ in range(5):  # another driver may unlink the file between our open and lock
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    holder = _read_holder(fd)
                    os.close(fd)
                    if exc.errno in (errno.EAGAIN, errno.EACCES):
                        raise self._in_use(holder) from exc
                    raise
                if not self._still_there(fd):
                    os.close(fd)
                    continue
                holder = _read_holder(fd)
                if holder and self._alive_elsewhere(holder):
                    os.close(fd)
                    raise self._in_use(holder)
                self.took_over = holder or None
                self._fd = fd
                self._write_holder()
                break
            else:
                raise RunDirInUse(f"{self.run_dir}: its lock file keeps changing; another driver is starting")
        except BaseException:
            if self._fd is not None:  # e.g. a full disk while writing who holds it
                os.unlink(self.path)
                os.close(self._fd)
                self._fd = None
            self._remove_dir_if_made()
            raise
        self._beat = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._beat.start()
        return self

    def _still_there(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _alive_elsewhere(self, holder: dict[str, object]) -> bool:
        """A holder on another host whose heartbeat is fresh: its lock did not reach us (a file
        system without shared locks), so it is alive for all we know."""
        if holder.get("host") == socket.gethostname():
            return False  # on this host the flock is the truth: it was released
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except OSError:
            return False
        return age < STALE_AFTER_S

    def _in_use(self, holder: dict[str, object]) -> RunDirInUse:
        command = holder.get("command")
        shown = f" ({command})" if isinstance(command, str) and command else ""
        return RunDirInUse(
            f"{self.run_dir}: in use by another driver ({describe_holder(holder)}){shown}; wait for it to "
            "end, or give another --out"
        )

    def _write_holder(self) -> None:
        assert self._fd is not None
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.time(),
            "command": " ".join(["python -m search", *sys.argv[1:]])[:500],
        }
        data = (json.dumps(record) + "\n").encode()
        try:
            os.ftruncate(self._fd, 0)
            written = os.pwrite(self._fd, data, 0)
            os.fsync(self._fd)
        except OSError as exc:  # a full disk: name the file
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        if written != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                pass  # a full or flaky disk: the flock still holds

    # -- giving it back ------------------------------------------------------------------
    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=1.0)
        if self._fd is None:
            return
        try:
            if self._still_there(self._fd):
                os.unlink(self.path)  # before unlocking: a driver waiting on it sees a new file
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = None
        self._remove_dir_if_made()

    def _remove_dir_if_made(self) -> None:
        """A run dir this lock made (and the parents it made) that nothing else wrote in goes
        again: a refused or failed start leaves nothing behind."""
        for folder in self._made:
            try:
                folder.rmdir()
            except OSError:
                break  # something was written in it: it stays, and so do its parents
        self._made = []

    def keep_dir(self) -> None:
        """The run has written its first files: the dir stays whatever happens next."""
        self._made = []

    def forget_run(self) -> bool:
        """A run that failed before its first trial, in a dir this lock made: everything it
        wrote there goes, and the dir with it on release (a failed start leaves nothing that a
        second try would refuse). Returns whether it did; a dir that existed before is left."""
        if not self._made_once:
            return False
        for entry in self.run_dir.iterdir():
            if entry == self.path:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        self._made = list(self._made_once)
        return True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def holder_of(run_dir: Path) -> dict[str, object] | None:
    """Who holds ``run_dir``'s lock now, or None (read-only: for messages and tests)."""
    path = RunDir(run_dir).lock
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _read_holder(fd)
    finally:
        os.close(fd)
    return holder or None
