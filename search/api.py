"""The Python API: ``search.run`` searches a space and returns a :class:`RunResult`;
``search.train`` trains configs (one, or several as one pack) and returns what each made;
``search.onboard`` adds LLMs to a saved router from a few scored questions (``search.suggest``
says which questions).

The command line is a thin layer over these. They are safe in a notebook: the environment is
as it was afterwards; Ctrl-C stops the running trials, saves the state and raises
KeyboardInterrupt (a second Ctrl-C raises at once); a Ray the caller started is used and left
running; any number of runs can follow each other in one process. A mistake in what is asked
(the space, the data, an argument) raises :class:`search.UserError` with the command line's
one-line message.

>>> import search
>>> try:
...     search.run("no-such-space.yaml")
... except search.UserError as exc:
...     print(exc)
no-such-space.yaml: file not found
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from search.arguments import FLAG, check
from search.errors import UserError

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from search.data.data_options import DataOptions
    from search.driver.plan import RunOptions
    from search.driver.runner import RunOutcome
    from search.driver.train_command import Trained
    from search.files.rundir import RunDir
    from search.routing.onboard import Onboarded
    from search.routing.router import Router
    from search.routing.suggest import Suggestion

F = TypeVar("F", bound=Callable[..., Any])


def _as_argument(message: str) -> str:
    """A message that starts with an option's flag, naming it as the API does instead."""
    from search.data.data_options import DataOptions
    from search.driver.plan import RunOptions
    from search.options import as_argument

    return as_argument(message, RunOptions, DataOptions)


def user_errors(fn: F) -> F:
    """Mistakes of the caller raise UserError, one line, the cause kept: a config the model
    package refused (its ConfigError) is translated here, once, for every public function, and
    a message that starts with a command-line flag names the API's argument instead."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from router_models import ConfigError

        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise UserError(str(exc)) from exc
        except UserError as exc:
            renamed = _as_argument(str(exc))
            if renamed == str(exc):
                raise
            raise type(exc)(renamed) from exc

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class BestTrial:
    """The best COMPLETE trial: its number, value (of the run's metric), params and the
    config.json it was exported as."""

    number: int
    value: float
    params: dict[str, Any]
    config: dict[str, Any]


@dataclass
class RunResult:
    """What a run left, as objects. Read back from its run dir, so ``RunResult.load(dir)``
    gives the same for a run made earlier (or by the command line).

    Attributes:
        run_dir: The run's files (:class:`search.files.rundir.RunDir`).
        best: The best trial, or None when no trial completed.
        interrupted: Whether Ctrl-C ended the run before all its trials ran.
    """

    run_dir: RunDir
    best: BestTrial | None
    interrupted: bool = False
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> RunResult:
        """The result of the run in ``run_dir``.

        Raises:
            UserError: ``run_dir`` holds no run, or its files cannot be read (one line).

        >>> RunResult.load("/nonexistent/run")
        Traceback (most recent call last):
        ...
        search.errors.UserError: /nonexistent/run: holds no run (study.journal not found)
        """
        from search.arguments import PATH, check
        from search.files.rundir import RunDir
        from search.results.records import read_object
        from search.results.run_files import SearchResult

        check("RunResult.load", run_dir=(run_dir, PATH))
        rd = RunDir(Path(run_dir).resolve())
        if not rd.holds_run():
            raise UserError(f"{rd}: holds no run ({RunDir.STUDY} not found)")
        best = None
        if rd.config.is_file():
            config = read_object(rd.config, "a run's config.json")
            result = SearchResult.from_dict(config.get("search_result"), rd.config)
            best = BestTrial(result.trial, float(result.value or "nan"), result.params, config)
        return cls(rd, best)

    @property
    def study(self) -> optuna.Study:
        """The run's Optuna study (every trial, its params, values and state)."""
        if "study" not in self._cache:
            from search.space import load_space
            from search.study.store import open_study

            self._cache["study"] = open_study(self.run_dir.path, load_space(self.run_dir.space), write=False)
        return self._cache["study"]

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial (results.parquet): number, state, value, params, metrics, timing."""
        import pyarrow.parquet as pq

        return pq.read_table(self.run_dir.results).to_pandas()

    @property
    def routing_table(self) -> pd.DataFrame | None:
        """Test routing accuracy of the exported routers and the baselines (routing.json), one
        row per router; None when the run exported none."""
        import pandas as pd

        from search.results.run_files import RoutingRecord

        record = RoutingRecord.read(self.run_dir.path)
        return pd.DataFrame(record.rows) if record is not None else None

    @property
    def best_router(self) -> Router | None:
        """The best trial's router, ready to route texts or embeddings; None when none."""
        return self._router(self.run_dir.best_router)

    @property
    def ensemble_router(self) -> Router | None:
        """The ensemble's router, when the run built one."""
        return self._router(self.run_dir.ensemble_router)

    @property
    def recommended(self) -> str | None:
        """The name of the router the run recommends (chosen on val among the searched
        routers, the ensemble and the baselines; routing.json), or None."""
        from search.results.run_files import RoutingRecord

        record = RoutingRecord.read(self.run_dir.path)
        return record.recommended if record is not None else None

    @property
    def recommended_router(self) -> Router | None:
        """The router the run recommends, ready to route (a baseline's, when one won on val);
        None when the run exported none."""
        from search.routing.router import Router

        if not self.run_dir.config.is_file() or not self.run_dir.best_router.is_file():
            return None
        return Router.load(self.run_dir.path)

    @property
    def pareto(self) -> pd.DataFrame | None:
        """A multi-objective run's front (pareto.json): one row per point with its trial, each
        objective's value, its router file and whether it is the exported one; None otherwise."""
        import pandas as pd

        from search.results.run_files import FrontRecord

        record = FrontRecord.read(self.run_dir.path)
        if record is None:
            return None
        rows = [
            {"trial": p["trial"], **p["values"], "router": p["router"], "picked": p["trial"] == record.picked}
            for p in record.front
        ]
        return pd.DataFrame(rows)

    def pareto_router(self, trial: int) -> Router | None:
        """The router of front point ``trial``, ready to route; None when it is not on the front."""
        return self._router(self.run_dir.path / self.run_dir.pareto_router_name(trial))

    def _router(self, path: Path) -> Router | None:
        from search.routing.router import Router

        return Router.load(path) if path.is_file() else None


def _output(quiet: bool) -> contextlib.AbstractContextManager[None]:
    """The library's messages for the call: printed plainly unless the caller set up a handler
    of their own (``search.log``); ``quiet`` keeps only warnings and errors."""
    from search.log import plain_output

    return plain_output(logging.WARNING if quiet else logging.INFO)


@user_errors
def run(
    space: str | os.PathLike[str],
    *,
    data: str | Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    export: str | os.PathLike[str] | None = None,
    num_samples: int | None = None,
    pack_size: int | str | None = None,
    budget: float | None = None,
    address: str | None = None,
    storage: str | None = None,
    resume: bool = False,
    enqueue: Sequence[dict[str, Any]] = (),
    warm_start: Sequence[str | os.PathLike[str]] = (),
    mlflow: str | None = None,
    pick: Mapping[str, float] | None = None,
    verbose: bool = False,
    quiet: bool = False,
    debug: bool = False,
    **data_options: Any,
) -> RunResult:
    """Search ``space``, export the best router and an ensemble, and return what the run left.

    Args:
        space: A search-space YAML file.
        data: The data (a folder, a built-in name, a table, records, ``synthetic[:...]``, or
            ``split=FILE`` parts); default: the space's ``data:``.
        out: The run dir (default ``runs/<space>-<date>-<time>-<6 hex>``).
        export: Where the best config.json goes (default: the space's ``export``).
        num_samples: Trials in total (a resume counts the old ones).
        pack_size: Trials trained as one fused model: an integer or ``"auto"``.
        budget: The mean cost per query the exported routers may spend (data with costs).
        address: A Ray cluster (``auto`` or ``ray://host:port``); default: the caller's Ray
            when one is running, else a local one.
        storage: Shared storage for cluster runs (an absolute path or a URI).
        resume: Continue the run in ``out``.
        enqueue: Params to try first, in order (each a dict of the space's params).
        warm_start: Earlier run dirs: their finished trials that fit this space are
            observations the sampler learns from (one line each says how many, and how their
            data differ); the trials run and counted are this run's own.
        mlflow: Log every trial as an MLflow run (a tracking URI or a file-store folder).
        pick: Weights by objective that pick the exported point of a multi-objective run's
            front (default: 1 each; see ``search/results/front_export.py``).
        verbose: Also show Ray's own progress. quiet: Print nothing (the result says it all).
        data_options: How to read ``data``: ``embeddings``, ``align``, ``id_column``,
            ``threshold``, ``split_seed``, ``encoder``, ``template``, ``task_column``,
            ``metric_rule`` (a list), ``tasks`` (a file), ``dedupe``, as the command line's flags.

    Returns:
        The run's :class:`RunResult` (``interrupted`` is False; Ctrl-C raises instead).

    Raises:
        UserError: A mistake in the space, the data or an argument (one line, as the command
            line says it). KeyboardInterrupt: Ctrl-C; the state is saved, resume with
            ``resume=True`` and the same ``out``.
    """
    from search.data.data_options import DataOptions
    from search.driver.plan import RunOptions
    from search.options import check_given, unknown

    extra = unknown(DataOptions, data_options)
    if extra:
        raise UserError(f"search.run: unknown argument(s) {', '.join(extra)}")
    # every argument by type and range before anything starts or is written
    given: dict[str, Any] = {
        "space": space,
        "data": data,
        "out": out,
        "export": export,
        "num_samples": num_samples,
        "pack_size": pack_size,
        "budget": budget,
        "address": address,
        "storage": storage,
        "resume": resume,
        "enqueue": enqueue,
        "warm_start": warm_start,
        "mlflow": mlflow,
        "pick": pick,
        "verbose": verbose,
        "debug": debug,
    }
    check_given("search.run", RunOptions, given)
    check("search.run", quiet=(quiet, FLAG))
    check_given("search.run", DataOptions, data_options)
    request = RunOptions(
        **{
            **given,
            "space": os.fspath(space),
            "data": [data] if isinstance(data, str) else (list(data) if data is not None else None),
            "out": os.fspath(out) if out is not None else None,
            "export": os.fspath(export) if export is not None else None,
            "enqueue": tuple(dict(p) for p in enqueue),
            "warm_start": tuple(os.fspath(w) for w in warm_start),
            "pick": dict(pick) if isinstance(pick, Mapping) else pick,
        },
        data_options=dict(data_options),
        api=True,
    )
    with _output(quiet):
        outcome = run_with(request)
    if outcome.interrupted:
        raise KeyboardInterrupt(
            f"interrupted: state saved in {outcome.run_dir}; resume with resume=True, out={outcome.run_dir!s}"
        )
    return RunResult.load(outcome.run_dir)


def run_with(options: RunOptions, *, hard_exit: bool = False) -> RunOutcome:
    """Run a search from its options, declared once in :class:`~search.driver.plan.RunOptions`
    (what :func:`run` builds from its arguments and the command line from its flags); returns
    how it ended (``code`` 0 done, 1 no trial completed, 130 stopped by Ctrl-C).

    Messages name options by their flags (the command line's words); :func:`run` names its
    arguments instead.

    Args:
        hard_exit: A second Ctrl-C exits the process at once (the command line); else it
            raises KeyboardInterrupt where the run is.
    """
    from search.driver.runner import run_search

    return run_search(options, hard_exit=hard_exit)


@user_errors
def train(
    configs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    data: str | Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    metric: str | None = None,
    quiet: bool = False,
    **data_options: Any,
) -> list[Trained]:
    """Train config.json files, several as one pack, and save each one's router.pt and
    metrics.json (in ``out``, default ``runs/train-<date>-<time>`` as on the command line, or
    ``out/<file stem>/`` for several).

    A config a search exported trains again as its trial did (the search's data, options,
    metric and seed) unless told otherwise.

    Returns:
        One :class:`search.driver.train_command.Trained` per config, in order: its status, router
        path and metrics (``metrics["test"]["route_acc"]`` and the rest).

    Raises:
        UserError: A bad config, data or argument (one line).

    >>> import search
    >>> try:
    ...     search.train("missing.json", quiet=True)
    ... except search.UserError as exc:
    ...     print(exc)
    missing.json: file not found
    """
    from search.arguments import COUNT, DATA, PATH, SEED, TEXT, optional
    from search.data.data_options import DataOptions
    from search.data.data_options import data_options as to_options
    from search.options import check_given, unknown

    listed: list[Any] = (
        [configs]
        if isinstance(configs, (str, os.PathLike))
        else list(configs)
        if isinstance(configs, Sequence) and not isinstance(configs, bytes)
        else [configs]
    )
    for config in listed:
        check("search.train", configs=(config, PATH))
    check(
        "search.train",
        data=(data, DATA),
        out=(out, optional(PATH)),
        epochs=(epochs, COUNT),
        device=(device, TEXT),
        seed=(seed, SEED),
        metric=(metric, optional(TEXT)),
        quiet=(quiet, FLAG),
    )
    extra = unknown(DataOptions, data_options)
    if extra:
        raise UserError(f"search.train: unknown argument(s) {', '.join(extra)}")
    check_given("search.train", DataOptions, data_options)
    paths = [os.fspath(c) for c in listed]
    if not paths:
        raise UserError("search.train: give at least one config.json")
    options = to_options(data_options)  # the same reading as the command line's
    with _output(quiet):
        return train_with(
            paths,
            [data] if isinstance(data, str) else data,
            out,
            options if data_options else None,
            epochs=epochs,
            device=device,
            seed=seed,
            metric=metric,
            out_name="out",
        )


def train_with(
    configs: Sequence[str],
    data: Sequence[str] | None,
    out: str | os.PathLike[str] | None,
    options: DataOptions | None,
    *,
    epochs: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    metric: str | None = None,
    out_name: str = "--out",
) -> list[Trained]:
    """:func:`train` with its arguments as the command line parsed them (their ranges are
    checked where they are used, and messages name ``out`` as ``out_name``)."""
    from search.data.parts import data_source
    from search.driver.session import process_state
    from search.driver.train_command import default_train_dir, run_train
    from search.files.paths import check_dir_target

    target = Path(out) if out is not None else default_train_dir()
    check_dir_target(target, out_name if out is not None else "the default output folder")
    with process_state():
        return run_train(
            list(configs),
            data_source(list(data) if data is not None else None),
            target,
            options=options,
            epochs=epochs,
            device=device,
            seed=seed,
            metric=metric,
        )


@user_errors
def onboard(
    router: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    scores: str | Sequence[str] | None = None,
    drop: Sequence[str] = (),
    encoder: str | os.PathLike[str] | None = None,
    **data_options: Any,
) -> Onboarded:
    """Add the LLMs of ``scores`` (their scores on some questions: records or a table, as
    ``data`` takes) to a saved router (a file, or a run dir's recommended router) and drop the
    LLMs named in ``drop``, without a search; the new router goes to ``out``. Every known LLM's
    predicted scores stay exactly as they were (README, New LLMs without a new search).

    ``encoder``: a local copy of the router's encoder, for texts. ``data_options``: how to read
    ``scores`` (``embeddings``, ``align``, ``id_column``, ... as :func:`run` takes them).

    Raises:
        UserError: An LLM the router has, too few or constant scores, questions it cannot
            embed, a bad argument (one line).
    """
    from search.arguments import DATA, NAMES, PATH, optional
    from search.data.data_options import DataOptions
    from search.data.data_options import data_options as to_options
    from search.options import check_given, unknown
    from search.routing.onboard import onboard_router

    check(
        "search.onboard",
        router=(router, PATH),
        out=(out, PATH),
        scores=(scores, DATA),
        drop=(drop, NAMES),
        encoder=(encoder, optional(PATH)),
    )
    extra = unknown(DataOptions, data_options)
    if extra:
        raise UserError(f"search.onboard: unknown argument(s) {', '.join(extra)}")
    check_given("search.onboard", DataOptions, data_options)
    return onboard_router(
        os.fspath(router),
        os.fspath(out),
        scores=scores,
        options=to_options(data_options),
        drop_names=list(drop),
        encoder=os.fspath(encoder) if encoder is not None else None,
    )


@user_errors
def suggest(
    router: str | os.PathLike[str],
    k: int,
    *,
    pool: str | os.PathLike[str] | None = None,
    seed: int = 0,
    encoder: str | os.PathLike[str] | None = None,
) -> Suggestion:
    """The ``k`` questions to score a new LLM on (ids, texts and embeddings), from a run dir's
    train questions or ``pool`` (a prompts file or embeddings); the same ``seed``, the same
    questions.

    Raises:
        UserError: No pool for a router file, fewer candidates than ``k``, a bad argument.
    """
    from search.arguments import COUNT, PATH, SEED, optional
    from search.routing.suggest import suggest_questions

    check(
        "search.suggest",
        router=(router, PATH),
        k=(k, COUNT),
        pool=(pool, optional(PATH)),
        seed=(seed, SEED),
        encoder=(encoder, optional(PATH)),
    )
    return suggest_questions(
        os.fspath(router),
        k,
        pool=os.fspath(pool) if pool is not None else None,
        seed=seed,
        encoder=os.fspath(encoder) if encoder is not None else None,
    )
