"""The run's Optuna study: one journal file in the run dir, resumable after any stop."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from search.space import Space, make_pruner, make_sampler

STUDY_FILE = "study.journal"


def open_study(run_dir: Path, space: Space) -> optuna.Study:
    """Create or load the study in ``run_dir`` with the space's sampler, pruner and direction."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    run_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = space.search
    storage = JournalStorage(JournalFileBackend(str(run_dir / STUDY_FILE)))
    # A run dir holds one study: reuse its name whatever the space file is called now.
    names = optuna.study.get_all_study_names(storage)
    return optuna.create_study(
        study_name=names[0] if names else space.name,
        storage=storage,
        sampler=make_sampler(search.sampler, search.seed),
        pruner=make_pruner(search.pruner, space.max_epochs),
        direction="maximize" if search.direction == "max" else "minimize",
        load_if_exists=True,
    )


def interrupted_numbers(study: optuna.Study) -> set[int]:
    """Trials a killed driver left RUNNING; they were closed as FAIL and are re-run."""
    return set(study.user_attrs.get("interrupted_trials", []))


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
