"""A run dir's record of itself and what a resume must match (its files are named in
``search/files/rundir.py``).

``run.json`` is written once, when a run starts (a resume never rewrites it): the space given,
the run's id, the data's fingerprint (``search/data/fingerprint.py``), the storage root and
the run's own folder under it, the cluster address. ``space.yaml`` is the space as it ran. A
resume reads both before anything starts and refuses, in one line, a space that searches
something else or data that is not the same.

"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.data.data_options import FIELDS, DataOptions
from search.errors import UserError
from search.files.atomic import write_json
from search.files.parse import ParseError, read_json
from search.files.rundir import RunDir
from search.space import Space

# What a resume may change: how the run is carried out, not what it searches (``data`` is
# checked by its fingerprint instead; ``name`` is the space file's stem).
RESUMABLE = (
    "name",
    "export",
    "data",
    "resources",
    "search.num_samples",
    "search.time_budget_s",
    "search.max_concurrent_trials",
    "search.pack_size",
    "search.budget",
)


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run (a record, or a study with records in it)."""
    return RunDir(run_dir).holds_run()


def read_object(path: Path, what: str) -> dict[str, Any]:
    """A JSON object a run wrote (run.json, config.json, routing.json, ensemble.json).

    Raises:
        UserError: Unreadable, not JSON, or not an object: one line naming the file and ``what``.
    """
    try:
        obj = read_json(path, what, max_bytes=64 << 20)
    except ParseError as exc:
        raise UserError(f"{exc} (expected {what}, a JSON object)") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected {what}, a JSON object; got {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class RunInfo:
    """``run.json``: the run's record of itself, written once when it starts (a resume never
    rewrites it; ``RunInfo()`` for a run made before records were kept).

    Attributes:
        space: The space file given. run_id: The run's id (its storage folder's name).
        data_source: The data it searched. data_options: How it read them (DataOptions').
        data: The data's fingerprint (``search/data/fingerprint.py``), checked on a resume.
        storage_root: ``--storage``. storage: The run's own folder under it (or the run dir).
        address: The Ray cluster. started: When it started (seconds since the epoch).
    """

    space: str = ""
    run_id: str | None = None
    data_source: str | None = None
    data_options: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] | None = None
    storage_root: str | None = None
    storage: str | None = None
    address: str | None = None
    started: float | None = None

    def write(self, run_dir: Path) -> None:
        write_json(RunDir(run_dir).run_info, dataclasses.asdict(self))

    def options(self) -> DataOptions:
        """How the run read its data, to read it again the same way.

        Raises:
            UserError: The recorded options are not options (one line).
        """
        raw = self.data_options or {}
        if not isinstance(raw, dict) or any(k not in FIELDS for k in raw):
            fields = ", ".join(FIELDS)
            raise UserError(f"{RunDir.RUN_INFO}: data_options is not a set of data options ({fields})")
        try:
            return DataOptions(**raw)
        except TypeError as exc:
            raise UserError(f"{RunDir.RUN_INFO}: data_options: {exc}") from exc


def read_run_info(run_dir: Path) -> RunInfo:
    """The run's record; ``RunInfo()`` when it has none (a run made before records were kept).

    Raises:
        UserError: The record is not a JSON object or a field has the wrong type (one line).
    """
    path = RunDir(run_dir).run_info
    if not path.exists():
        return RunInfo()
    info = read_object(path, "a run's record")
    for key in ("storage", "run_id", "data_source"):
        if info.get(key) is not None and not isinstance(info[key], str):
            raise UserError(f"{path}: {key} is {info[key]!r}, not a text")
    if "data" in info and info["data"] is not None and not isinstance(info["data"], dict):
        raise UserError(f"{path}: data is {info['data']!r}, not the data's record")
    names = {f.name for f in dataclasses.fields(RunInfo)}
    return RunInfo(**{k: v for k, v in info.items() if k in names})


def new_run_id(run_dir: Path) -> str:
    """A run's id: its dir's name and 8 random hex digits, so that no two runs share one."""
    return f"{run_dir.name}-{secrets.token_hex(4)}"


def run_storage(root: str | None, run_dir: Path, run_id: str | None) -> str:
    """Where the run keeps its trial routers and Tune's files: its own folder ``ROOT/<run id>``
    under a shared ``--storage`` root (so runs sharing a root never touch each other's files),
    else the run dir itself. A run recorded before runs had ids keeps the root, as it did."""
    if root is None:
        return str(run_dir)
    if run_id is None:
        return root
    return f"{root.rstrip('/')}/{run_id}"


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): obj}


def space_difference(recorded: Space, given: Space) -> str | None:
    """The first key where ``given`` searches something other than ``recorded`` (keys a resume
    may change left out), as ``key: then -> now``; None when they search the same."""
    then, now = _flat(recorded.model_dump(mode="json")), _flat(given.model_dump(mode="json"))
    for key in sorted(set(then) | set(now)):
        if any(key == r or key.startswith(r + ".") for r in RESUMABLE):
            continue
        if then.get(key) != now.get(key):
            return f"{key}: {then.get(key)!r} in the run, {now.get(key)!r} now"
    return None
