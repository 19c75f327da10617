"""The run's Optuna study: one journal file in the run dir, resumable after any stop."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Container, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend
from optuna.trial import FrozenTrial, TrialState

from search.errors import UserError, first_line
from search.files.rundir import RunDir
from search.metrics.direction import Direction
from search.space import Space, make_sampler
from search.study.journal import (
    broken_history,
    check_journal,
    other_optuna,
    repair_in_place,
    repaired_copy,
    restore,
    unreadable,
)
from search.study.optuna_internals import journal_backend_of, trial_id
from search.study.pruners import bind, study_pruner
from search.study.warm import WarmSampler, frozen, read_seeds


class _HeldBackend(BaseJournalBackend):
    """The run's journal file, whose appends can be held back and written together: one lock
    and one fsync for a trial's closing attributes instead of one each (see :func:`held_writes`)."""

    def __init__(self, inner: BaseJournalBackend) -> None:
        self.inner = inner
        self.held: list[dict[str, Any]] | None = None

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        yield from self.inner.read_logs(log_number_from)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        if self.held is not None:
            self.held.extend(logs)
        else:
            self.inner.append_logs(logs)


@contextlib.contextmanager
def held_writes(study: optuna.Study) -> Iterator[None]:
    """Within the block, writes to the run's journal are held and appended at its end, in order.

    Only for writes nothing in the block reads back: until the block ends, the study does not
    show them (a trial's own attributes and params, which it caches itself, are safe; an ask,
    which reads its new trial's id back, or a tell, whose frozen trial is read back, are not).
    A study on any other storage writes at once.
    """
    backend = journal_backend_of(study)  # ours from _load
    if not isinstance(backend, _HeldBackend) or backend.held is not None:
        yield
        return
    backend.held = []
    try:
        yield
    finally:
        logs, backend.held = backend.held, None
        if logs:
            backend.inner.append_logs(logs)


class _RunStorage(JournalStorage):
    """The run's journal storage, which also keeps the ids of its waiting (enqueued, not yet
    asked) trials: every ask looks for one first, and finding them by reading every trial cost
    a scan of the study per ask. The run dir is locked, so this process is its only writer."""

    def __init__(self, backend: BaseJournalBackend) -> None:
        super().__init__(backend)
        self._waiting: dict[int, set[int]] = {}  # study id -> its waiting trials' ids

    def _waiting_of(self, study_id: int) -> set[int]:
        if study_id not in self._waiting:
            trials = super().get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
            self._waiting[study_id] = {trial_id(t) for t in trials}
        return self._waiting[study_id]

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if template_trial is not None and template_trial.state == TrialState.WAITING:
            self._waiting_of(study_id).add(trial_id)
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        done = super().set_trial_state_values(trial_id, state, values)
        if state != TrialState.WAITING:
            for ids in self._waiting.values():
                ids.discard(trial_id)
        return done

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is None or tuple(states) != (TrialState.WAITING,):  # type: ignore[arg-type]
            return super().get_all_trials(study_id, deepcopy, states)
        trials = [self.get_trial(i) for i in sorted(self._waiting_of(study_id))]
        trials = [t for t in trials if t.state == TrialState.WAITING]
        return copy.deepcopy(trials) if deepcopy else trials


def _load(journal: Path, space: Space, create: bool, run_dir: Path) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = space.search
    storage = _RunStorage(_HeldBackend(JournalFileBackend(str(journal))))
    sampler = make_sampler(search.sampler, search.seed)
    seeds = read_seeds(run_dir)
    if seeds:  # a warm-started run: the sampler learns from earlier runs' trials too
        sampler = WarmSampler(sampler, frozen(seeds, space))
    pruner = study_pruner(space)
    # A run dir holds one study: reuse its name whatever the space file is called now. Loading
    # writes nothing (create_study would append a record even for a study that exists).
    names = optuna.study.get_all_study_names(storage)
    if names:
        study = optuna.load_study(study_name=names[0], storage=storage, sampler=sampler, pruner=pruner)
    elif create:
        study = optuna.create_study(
            study_name=space.name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=[Direction(d).optuna for d in search.directions],
        )
    else:
        raise UserError(f"{journal}: holds no study (the run stopped before its first trial was asked)")
    study.get_trials(deepcopy=False)  # replays every record now: a broken history fails here
    bind(pruner, study)
    return study


def open_study(
    run_dir: Path, space: Space, write: bool = True, notes: list[str] | None = None
) -> optuna.Study:
    """Create or load the study in ``run_dir`` with the space's sampler, pruner and direction.

    A damaged journal (see ``journal.py``) is read from its intact records: repaired in place
    (the original kept beside it) when ``write``, else from a copy. What was skipped is appended
    to ``notes``.

    Raises:
        UserError: The intact records do not make a readable study (one line: file and line).
    """
    path = RunDir(run_dir).study
    check = check_journal(path) if path.exists() else None
    if check is not None and (error := other_optuna(check)) is not None:
        raise error
    if check is None or not check.damaged:
        if write:
            run_dir.mkdir(parents=True, exist_ok=True)
        try:
            return _load(path, space, create=write, run_dir=run_dir)
        except UserError:
            raise
        except Exception as exc:  # records that are JSON but not a history Optuna can replay
            text = first_line(exc)
            raise UserError(
                f"{path}: the study cannot be read ({type(exc).__name__}: {text}); restore the file "
                "from a backup, or start a new run with another --out"
            ) from exc
    broken_at = broken_history(check)
    if broken_at is not None or not check.records:
        raise unreadable(check, broken_at)
    backup = repair_in_place(check) if write else None
    source = path if write else repaired_copy(check)
    try:
        study = _load(source, space, create=False, run_dir=run_dir)
    except Exception as exc:  # Optuna raises many types on an inconsistent history
        if backup is not None:
            restore(check, backup)
        raise unreadable(check) from exc
    kept = f"; the original is kept as {backup.name}" if backup is not None else ""
    if notes is not None:
        notes.append(f"{path}: skipped {check.describe()}; read the {len(check.intact)} intact records{kept}")
    return study


def interrupted_numbers(study: optuna.Study) -> set[int]:
    """Trials a killed driver left RUNNING; they were closed as FAIL and are re-run."""
    return set(study.user_attrs.get("interrupted_trials", []))


def trials_started(run_dir: Path) -> bool:
    """Whether the run's study has asked any trial (read from its journal; no study: no)."""
    from search.study.journal import asks_trials

    journal = RunDir(run_dir).study
    return journal.is_file() and asks_trials(journal)


def counted_trials(study: optuna.Study) -> int:
    """Finished trials that count toward num_samples (interrupted ones do not)."""
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    skip = interrupted_numbers(study)
    return sum(1 for t in study.get_trials(deepcopy=False, states=finished) if t.number not in skip)


def mark_interrupted(study: optuna.Study, numbers: list[int]) -> None:
    """Record trials as interrupted: they do not count toward num_samples."""
    study.set_user_attr("interrupted_trials", sorted(interrupted_numbers(study) | set(numbers)))


def close_interrupted(study: optuna.Study) -> int:
    """Mark trials left RUNNING by a killed driver as FAIL (interrupted); returns how many."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if running:
        mark_interrupted(study, [t.number for t in running])
        for t in running:
            study.tell(t.number, state=TrialState.FAIL)
    return len(running)
