"""The JSON files a run leaves, typed: config.json's ``search_result`` (:class:`SearchResult`),
``routing.json`` (:class:`RoutingRecord`) and ``pareto.json`` (:class:`FrontRecord`). Each has
one writer (``to_dict``, written by the end of a run) and one reader (``read``/``from_dict``,
used by the export, the report, the API and the server), so a key is named in one place and a
damaged file is one line naming it. (``run.json`` is ``records.py``'s.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.errors import UserError
from search.files.rundir import RunDir
from search.results.records import read_object

# search_result's keys whose value is absent (not null) when the run has none
OPTIONAL = ("objectives", "pareto", "ensemble", "routing", "recommended")


@dataclass
class SearchResult:
    """What config.json says of the search that made it: the exported trial, how to train it
    again (its data, data options, metric and seed), the run's counts, and what the end of the
    run added (baselines, families, the ensemble, the front, budget routing, the
    recommendation). Built by the end of a run, written once with config.json."""

    trial: int
    metric: str = ""
    mode: str = ""
    value: float | None = None
    tune_trial_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    best_epoch: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    data_source: str | None = None
    data_options: dict[str, Any] | None = None
    seed: int = 0
    space: str = ""
    trials: dict[str, int] = field(default_factory=dict)
    objectives: list[dict[str, Any]] | None = None  # several: each objective's value
    baselines: dict[str, str] = field(default_factory=dict)  # key -> its name in the table
    family_bests: dict[str, int] = field(default_factory=dict)  # model type -> its best trial
    pareto: dict[str, Any] | None = None
    ensemble: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None  # the budget's routing
    recommended: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The block as config.json holds it (what a run has not are absent keys)."""
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if not (k in OPTIONAL and v is None)}

    @classmethod
    def from_dict(cls, block: Any, where: Path | str) -> SearchResult:
        """The block read back.

        Raises:
            UserError: Not a search's block: a field missing or of the wrong type (one line).
        """
        if not isinstance(block, dict):
            raise UserError(f"{where}: not a run's config.json (no search_result)")
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            result = cls(**{k: v for k, v in block.items() if k in names})
        except TypeError as exc:
            raise UserError(f"{where}: search_result lacks what a run writes ({exc})") from exc
        checks = (
            ("trial", isinstance(result.trial, int) and not isinstance(result.trial, bool)),
            ("value", result.value is None or isinstance(result.value, (int, float))),
            ("baselines", isinstance(result.baselines, dict)),
            ("family_bests", isinstance(result.family_bests, dict)),
            ("ensemble", result.ensemble is None or isinstance(result.ensemble, dict)),
            ("params", isinstance(result.params, dict)),
        )
        for name, ok in checks:
            if not ok:
                raise UserError(f"{where}: search_result.{name} is {getattr(result, name)!r}")
        ens = result.ensemble
        if ens is not None:
            router = ens.get("router")
            if not isinstance(router, str) or Path(router).name != router:
                raise UserError(
                    f"{where}: search_result.ensemble.router {router!r} is not a file name in the run dir"
                )
            if not isinstance(ens.get("trials"), list):
                raise UserError(f"{where}: search_result.ensemble.trials is {ens.get('trials')!r}")
        return result

    @classmethod
    def read(cls, config: Path) -> SearchResult | None:
        """The search_result of the config.json at ``config``; None when it has none (a config
        written by hand).

        Raises:
            UserError: The file cannot be read, or its block is not a search's (one line).
        """
        block = read_object(config, "a run's config.json").get("search_result")
        return None if block is None else cls.from_dict(block, config)

    @property
    def ensemble_size(self) -> int:
        """Routers in the ensemble (its trials and its baselines); 0 without one."""
        ens = self.ensemble or {}
        return len(ens.get("trials") or ()) + len(ens.get("baselines") or ())


@dataclass(frozen=True)
class RoutingRecord:
    """``routing.json``: the routing table's rows (the run's routers and the baselines on val
    and test), the router it recommends and why, per-task and graded notes, and leakage."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    recommended: str | None = None
    recommendation: Any = None
    tasks: Any = None
    graded: Any = None
    leakage: dict[str, Any] | None = None

    def write(self, run_dir: Path) -> None:
        from search.files.atomic import write_json

        write_json(RunDir(run_dir).routing_table, dataclasses.asdict(self))

    @classmethod
    def read(cls, run_dir: Path) -> RoutingRecord | None:
        """The run's routing table; None when the run wrote none.

        Raises:
            UserError: The file is not a routing table (one line).
        """
        path = RunDir(run_dir).routing_table
        if not path.is_file():
            return None
        raw = read_object(path, "a run's routing table")
        rows, named = raw.get("rows", []), raw.get("recommended")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise UserError(f"{path}: rows is not a list of rows")
        if named is not None and not isinstance(named, str):
            raise UserError(f"{path}: recommends {named!r}, not a router's name")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class FrontRecord:
    """``pareto.json``: a multi-objective run's front (each point's trial, values, model type,
    params, best epoch and router file), the rule and weights that picked its exported point,
    and that point."""

    objectives: list[dict[str, str]]
    rule: str
    weights: dict[str, float]
    picked: int
    front: list[dict[str, Any]]

    def write(self, run_dir: Path) -> dict[str, Any]:
        from search.files.atomic import write_json

        out = dataclasses.asdict(self)
        write_json(RunDir(run_dir).pareto, out)
        return out

    @classmethod
    def read(cls, run_dir: Path) -> FrontRecord | None:
        """The run's front; None when it has none (one objective, or not exported yet).

        Raises:
            UserError: The file is not a run's front (one line).
        """
        path = RunDir(run_dir).pareto
        if not path.is_file():
            return None
        raw = read_object(path, "a run's Pareto front")
        try:
            record = cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})
        except KeyError as exc:
            raise UserError(f"{path}: not a run's Pareto front (no {exc})") from exc
        if not isinstance(record.front, list) or not all(
            isinstance(p, dict) and {"trial", "values", "router"} <= set(p) for p in record.front
        ):
            raise UserError(f"{path}: front is not a list of points (trial, values, router)")
        if not isinstance(record.weights, dict):
            raise UserError(f"{path}: weights is {record.weights!r}, not weights by objective")
        return record
