"""Checks on the paths a command will write, made before any data is loaded or any trial starts:
a folder where a file is wanted, a file where a folder is wanted, a parent that cannot be made
or written. Each check writes nothing (its write probe is removed at once)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from search.errors import UserError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path("/")


def _probe(folder: Path, what: str, path: Path) -> None:
    """Can a file be created in ``folder``? (A folder's permission bits do not stop root.)"""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".rs-probe-")
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot write in {folder} ({exc.strerror})") from exc
    os.close(fd)
    os.unlink(tmp)


def _check_parent(path: Path, what: str) -> None:
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise UserError(f"{what} {path}: {ancestor} is a file, not a folder")
    _probe(ancestor, what, path)


def check_file_target(path: Path, what: str) -> None:
    """``path`` can be written as a file: not a folder; missing parents can be made."""
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; give a file path, e.g. {path / 'config.json'}")
    _check_parent(path, what)


def check_dir_target(path: Path, what: str) -> None:
    """``path`` can be used as a folder to write in: not a file; it or its parents can be made."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: is a file, not a folder")
    if path.is_dir():
        _probe(path, what, path)
    else:
        _check_parent(path, what)
