"""A run dir: every file a run leaves, named once (:class:`RunDir`).

On the ground floor, so that every layer names a run's files through it: the trainable saves
trial routers under the run's storage (:func:`trial_router_uri`), the driver writes the record,
the study and the exports, results read them, ``route`` and ``--resume`` find them.

>>> rd = RunDir("runs/demo")
>>> rd.config.name, rd.best_router.name, rd.study.name, rd.plot("optimization_history").name
('config.json', 'best_router.pt', 'study.journal', 'optimization_history.png')
>>> trial_router_uri("s3://bucket/runs/demo-1a2b3c4d", 7)
's3://bucket/runs/demo-1a2b3c4d/routers/trial_00007.pt'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROUTERS = "routers"  # the folder of trial routers, under a run's storage


def trial_router_uri(storage: str, number: int) -> str:
    """Where trial ``number``'s router is kept under a run's storage (a path or a URI)."""
    return f"{storage.rstrip('/')}/{ROUTERS}/trial_{number:05d}.pt"


@dataclass(frozen=True, init=False)
class RunDir:
    """The files of one run, by what they are. The driver, the results, the report, ``route``
    and ``--resume`` name a run's files only through here.

    Trial routers live under the run's storage (the run dir itself, or ``ROOT/<run id>`` with
    ``--storage``): :meth:`trial_router`.
    """

    path: Path

    RUN_INFO = "run.json"  # the run's record (written once)
    SPACE = "space.yaml"  # the space as it ran
    STUDY = "study.journal"  # the Optuna study: every trial, value and state
    WARM_START = "warm_start.json"  # earlier runs' trials the sampler learns from (--warm-start)
    LOCK = ".lock"  # held by the driver that runs it (``lock.py``)
    RESULTS = "results.parquet"  # one row per trial
    CONFIG = "config.json"  # the best trial's config, and what the run exported
    BEST_ROUTER = "best_router.pt"
    ENSEMBLE_ROUTER = "ensemble_router.pt"
    ENSEMBLE_SUMMARY = "ensemble.json"
    ROUTING_TABLE = "routing.json"  # routing accuracy of the routers and baselines, on test
    PARETO = "pareto.json"  # a multi-objective run's front: each point's values and router
    PARETO_ROUTERS = "pareto"  # the folder of the front's routers (trial_<n>.pt)
    BASELINES = "baselines"  # the baseline routers (single best, best per task, kNN): <key>.pt
    FAMILIES = "families"  # each other model type's best trial router: <model_type>.pt
    REPORT = "report.md"
    TUNE = "tune"  # Ray Tune's own experiment files (local runs)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def run_info(self) -> Path:
        return self.path / self.RUN_INFO

    @property
    def space(self) -> Path:
        return self.path / self.SPACE

    @property
    def study(self) -> Path:
        return self.path / self.STUDY

    @property
    def warm_start(self) -> Path:
        return self.path / self.WARM_START

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    @property
    def results(self) -> Path:
        return self.path / self.RESULTS

    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def best_router(self) -> Path:
        return self.path / self.BEST_ROUTER

    @property
    def ensemble_router(self) -> Path:
        return self.path / self.ENSEMBLE_ROUTER

    @property
    def ensemble_summary(self) -> Path:
        return self.path / self.ENSEMBLE_SUMMARY

    @property
    def routing_table(self) -> Path:
        return self.path / self.ROUTING_TABLE

    @property
    def pareto(self) -> Path:
        return self.path / self.PARETO

    @property
    def pareto_routers(self) -> Path:
        return self.path / self.PARETO_ROUTERS

    @staticmethod
    def pareto_router_name(number: int) -> str:
        """A front point's router, relative to the run dir."""
        return f"{RunDir.PARETO_ROUTERS}/trial_{number}.pt"

    @staticmethod
    def baseline_router_name(key: str) -> str:
        """A baseline's router, relative to the run dir."""
        return f"{RunDir.BASELINES}/{key}.pt"

    def baseline_router(self, key: str) -> Path:
        return self.path / self.baseline_router_name(key)

    @staticmethod
    def family_router_name(model_type: str) -> str:
        """A model type's best trial router, relative to the run dir."""
        return f"{RunDir.FAMILIES}/{model_type}.pt"

    def family_router(self, model_type: str) -> Path:
        return self.path / self.family_router_name(model_type)

    @property
    def report(self) -> Path:
        return self.path / self.REPORT

    @property
    def tune(self) -> Path:
        return self.path / self.TUNE

    @staticmethod
    def plot_name(name: str) -> str:
        """The file name of the report's plot ``name``."""
        return f"{name}.png"

    def plot(self, name: str) -> Path:
        """A plot of the report (``NAME.png``)."""
        return self.path / self.plot_name(name)

    def trial_router(self, number: int, storage: str | None = None) -> str:
        """Where trial ``number``'s router is kept: under ``storage`` (the run's own storage
        folder), else under the run dir."""
        return trial_router_uri(storage or str(self.path), number)

    def holds_run(self) -> bool:
        """Whether this dir holds a run (a record, or a study with records in it)."""
        return self.run_info.is_file() or (self.study.is_file() and self.study.stat().st_size > 0)
