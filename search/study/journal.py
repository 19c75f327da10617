"""Checking the study journal before it is read: a crash mid-write or a full disk can leave a
record cut short or damaged, which Optuna's reader either drops without a word or fails on.

Each line of the journal is one JSON record (an operation on the study). A damaged line is
left out and said: a resume keeps the original as ``study.journal.damaged`` and continues from
the intact records; a report reads them from a copy and changes nothing. When the intact
records do not make a readable study (a damaged record was one that later ones depend on), the
command stops with one line naming the file and the line.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from search.errors import UserError
from search.files.atomic import atomic_write_bytes
from search.study.optuna_internals import journal_operations


@dataclass
class JournalCheck:
    path: Path
    intact: list[bytes] = field(default_factory=list)
    records: list[tuple[int, dict]] = field(default_factory=list)  # (1-based line, record)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (1-based line, what)
    unknown: list[tuple[int, object]] = field(default_factory=list)  # (line, op code) of another Optuna

    def describe(self) -> str:
        shown = "; ".join(f"line {n}: {what}" for n, what in self.damaged[:3])
        more = f" and {len(self.damaged) - 3} more" if len(self.damaged) > 3 else ""
        return f"{len(self.damaged)} damaged record(s) ({shown}{more})"


def check_journal(path: Path) -> JournalCheck:
    """Every line of the journal: intact (complete, JSON, a study record) or damaged (why)."""
    check = JournalCheck(path)
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        if not line.endswith(b"\n"):
            check.damaged.append((number, "cut short (a write that never finished)"))
            continue
        if not line.strip():  # Optuna's reader fails on an empty line
            check.damaged.append((number, "an empty line"))
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            check.damaged.append((number, "not valid JSON"))
            continue
        if not isinstance(record, dict) or "op_code" not in record:
            check.damaged.append((number, "not a study record"))
            continue
        op = record["op_code"]
        if isinstance(op, bool) or not isinstance(op, int) or op not in _known_ops():
            check.unknown.append((number, op))
            continue
        if op in _trial_ops() and (
            isinstance(record.get("trial_id"), bool) or not isinstance(record.get("trial_id"), int)
        ):
            check.damaged.append((number, "a trial record without an integer trial_id"))
            continue
        check.intact.append(line)
        check.records.append((number, record))
    return check


def _known_ops() -> set[int]:
    return {int(op) for op in journal_operations()}


def _trial_ops() -> set[int]:
    Op = journal_operations()
    return {
        int(Op.SET_TRIAL_PARAM),
        int(Op.SET_TRIAL_STATE_VALUES),
        int(Op.SET_TRIAL_INTERMEDIATE_VALUE),
        int(Op.SET_TRIAL_USER_ATTR),
        int(Op.SET_TRIAL_SYSTEM_ATTR),
    }


def asks_trials(path: Path) -> bool:
    """Whether the journal records any trial being asked (its intact records)."""
    Op = journal_operations()
    return any(r.get("op_code") == Op.CREATE_TRIAL for _, r in check_journal(path).records)


def other_optuna(check: JournalCheck) -> UserError | None:
    """The one line for a journal with op codes this Optuna does not know (written by another
    version): its records cannot be read, and dropping them would lose what they say."""
    if not check.unknown:
        return None
    import optuna

    line, op = check.unknown[0]
    return UserError(
        f"{check.path} line {line}: op code {op!r} is not one Optuna {optuna.__version__} knows "
        f"(valid: {min(_known_ops())}-{max(_known_ops())}); the journal was written by another "
        "Optuna version: run with the version that wrote it"
    )


def broken_history(check: JournalCheck) -> int | None:
    """None when the intact records make a whole history (every record's study and trial was
    created before it); else the line of the record that lost what it refers to."""
    Op = journal_operations()
    trial_ops = _trial_ops()
    studies = trials = 0
    for line, record in check.records:
        op = record.get("op_code")
        if op == Op.CREATE_STUDY:
            studies += 1
        elif studies == 0:
            return line
        elif op == Op.CREATE_TRIAL:
            trials += 1
        elif op in trial_ops and not 0 <= record["trial_id"] < trials:
            return line
    return None


def unreadable(check: JournalCheck, broken_at: int | None = None) -> UserError:
    """The one line for a journal whose intact records do not make a study: names the damaged
    line the rest depend on."""
    before = [n for n, _ in check.damaged if broken_at is None or n < broken_at]
    line = before[-1] if before else check.damaged[0][0]
    return UserError(
        f"{check.path} line {line}: the study cannot be read without this damaged record; the "
        "lines before it are intact. Restore the file from a backup, or start a new run with "
        "another --out"
    )


def repaired_copy(check: JournalCheck) -> Path:
    """The intact records in a temporary file (the run dir is not touched), removed at exit."""
    fd, name = tempfile.mkstemp(prefix="study-", suffix=".journal")
    with open(fd, "wb") as fh:
        fh.writelines(check.intact)
    atexit.register(Path(name).unlink, missing_ok=True)
    return Path(name)


def repair_in_place(check: JournalCheck) -> Path:
    """Keep the original as ``<journal>.damaged`` and leave only the intact records; returns the
    backup's path."""
    backup = check.path.with_name(check.path.name + ".damaged")
    shutil.copy2(check.path, backup)
    atomic_write_bytes(check.path, b"".join(check.intact))
    return backup


def restore(check: JournalCheck, backup: Path) -> None:
    shutil.copy2(backup, check.path)
    backup.unlink()


class ReadOnlyJournal:
    """A study journal read as it grows, never written (``search dashboard``): each complete
    line that is a study record Optuna knows is a log; a damaged line is passed over (said once
    through ``damaged``), a line still being written waits for its end. Any write raises
    PermissionError. Implements Optuna's journal backend interface (``read_logs``,
    ``append_logs``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0  # bytes of the file already read (whole lines only)
        self.logs: list[dict] = []
        self.damaged: list[tuple[int, str]] = []
        self.lines = 0

    def read_logs(self, log_number_from: int) -> list[dict]:
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # a last line without its end is not read yet
        for line in chunk[:end].splitlines(keepends=True):
            self.lines += 1
            self.offset += len(line)
            record = _record(line)
            if isinstance(record, str):
                self.damaged.append((self.lines, record))
            else:
                self.logs.append(record)
        return self.logs[log_number_from:]

    def append_logs(self, logs: list[dict]) -> None:
        raise PermissionError(f"{self.path}: read-only here; the run's study is not changed")


def _record(line: bytes) -> dict | str:
    """A journal line's record, or why it is not one."""
    if not line.strip():
        return "an empty line"
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "not valid JSON"
    if not isinstance(record, dict) or "op_code" not in record:
        return "not a study record"
    op = record["op_code"]
    if isinstance(op, bool) or not isinstance(op, int) or op not in _known_ops():
        return f"op code {op!r} unknown to this Optuna"
    if op in _trial_ops() and (
        isinstance(record.get("trial_id"), bool) or not isinstance(record.get("trial_id"), int)
    ):
        return "a trial record without an integer trial_id"
    return record
