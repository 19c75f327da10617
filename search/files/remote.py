"""Trial artifacts on shared storage: a local absolute path or a URI (s3://, gs://, ...)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import pyarrow.fs as pafs

from search.deadline import in_thread
from search.errors import UserError, first_line
from search.files.rundir import trial_router_uri

PROBE_TIMEOUT_S = 10.0


def check_storage(storage: str) -> str:
    """Accept an absolute path or a URI with a scheme and a bucket or folder; a relative path
    is a user error. (Whether a URI can be reached is ``probe_storage``'s: resolving one may
    take seconds.)"""
    if "://" in storage:
        scheme, _, rest = storage.partition("://")
        if not scheme.isidentifier():
            raise UserError(f"--storage {storage!r}: not a URI (scheme://bucket/path)")
        if scheme != "file" and not rest.split("/", 1)[0]:
            raise UserError(
                f"--storage {storage!r}: names no bucket or folder; give one, e.g. s3://bucket/router-search"
            )
        return storage.rstrip("/")
    if not os.path.isabs(storage):
        raise UserError(
            f"--storage {storage!r}: must be an absolute path on shared storage or a URI "
            "(e.g. /mnt/nfs/router-search or s3://bucket/router-search)"
        )
    return str(Path(storage))


def probe_storage(storage: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Write and delete a small file in ``storage`` (the storage root), within
    ``timeout`` seconds: storage that cannot be reached or written fails here in one line, not
    in every trial later.

    Raises:
        UserError: No answer within ``timeout``, or the write was refused (the reason's first line).
    """

    def write_and_delete() -> None:
        fs, path = _fs(storage)  # resolving an object store's region may itself take seconds
        fs.create_dir(path, recursive=True)
        probe = f"{path.rstrip('/')}/.rs-probe-{secrets.token_hex(4)}"
        with fs.open_output_stream(probe) as fh:
            fh.write(b"router-search storage probe\n")
        fs.delete_file(probe)

    finished, answer = in_thread(write_and_delete, timeout)
    if not finished:
        raise UserError(
            f"--storage {storage}: no answer within {timeout:.0f} s; check the URI, the network and "
            "the credentials (every node must reach it)"
        )
    if isinstance(answer, Exception):
        text = first_line(answer)
        raise UserError(f"--storage {storage}: cannot write there ({text})")


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)


def put_file(local: str | os.PathLike[str], uri: str) -> None:
    """Copy a local file to ``uri``, complete or not at all (temp name, then move)."""
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    try:
        pafs.copy_files(str(local), tmp, destination_filesystem=fs)
        fs.move(tmp, path)
    except BaseException:
        if fs.get_file_info(tmp).type == pafs.FileType.File:
            fs.delete_file(tmp)  # a full disk leaves no part file behind
        raise


def get_bytes(uri: str) -> bytes:
    fs, path = _fs(uri)
    with fs.open_input_stream(path) as fh:
        return bytes(fh.read())


def exists(uri: str) -> bool:
    fs, path = _fs(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def delete(uri: str) -> None:
    """Delete the file at ``uri`` if it is there."""
    fs, path = _fs(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)


def keep_routers(storage: str, numbers: Iterable[int]) -> int:
    """Delete every trial router on ``storage`` but those of trials ``numbers``; returns how many."""
    keep = {trial_router_uri(storage, n).rsplit("/", 1)[-1] for n in numbers}
    fs, folder = _fs(trial_router_uri(storage, 0).rsplit("/", 1)[0])
    selector = pafs.FileSelector(folder, allow_not_found=True)
    removed = 0
    for info in fs.get_file_info(selector):
        if info.type == pafs.FileType.File and info.path.rsplit("/", 1)[-1] not in keep:
            fs.delete_file(info.path)
            removed += 1
    return removed
