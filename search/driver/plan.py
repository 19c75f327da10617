"""``search run``'s plan: every check that needs no Ray and no data, before anything starts."""

from __future__ import annotations

import argparse
import math
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.arguments import COUNT, DATA, ENQUEUE, FLAG, NUMBER, PACK, PATH, PATHS, PICK, TEXT, optional
from search.data.data_options import DataOptions, data_options
from search.data.parts import data_source
from search.driver.cluster import check_reachable
from search.errors import UserError
from search.files.paths import check_dir_target, check_file_target
from search.files.remote import check_storage
from search.files.rundir import RunDir
from search.limits import MAX_PACK, MAX_SAMPLES
from search.options import given, option
from search.options import named as options_named
from search.results.records import holds_run, space_difference
from search.space import Space, load_space
from search.space.search_spec import SearchSpec
from search.trial.fidelity import Fidelity


@dataclass(frozen=True)
class RunPlan:
    """What ``search run`` will do, every option checked. Frozen: what changes once the run dir
    is claimed (a default name taken, the run's storage folder, the space fitted to the data)
    makes a new plan (``dataclasses.replace``), so no module changes another's plan.

    ``storage`` is the run's own folder for trial routers and Tune's files; the plan starts it
    at the run dir, and the runner sets it from the run's id under ``storage_root`` (given with
    ``--storage``) once the run dir is locked.
    """

    space: Space
    run_dir: Path
    export: Path
    data_spec: Any  # a source string, or {split: [files]} parts
    num_samples: int
    address: str | None
    storage: str
    resume: bool
    verbose: bool
    debug: bool
    pack_size: int | str = "auto"
    budget: float | None = None
    storage_root: str | None = None
    auto_named: bool = False  # run_dir is a default name: pick another if it is taken
    space_path: str = ""
    start_wait_s: float | None = None  # how long a pack may wait for a node (an autoscaler)
    data_options: DataOptions = field(default_factory=DataOptions)
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    warm_start: list[str] = field(default_factory=list)  # earlier run dirs (--warm-start)
    mlflow: str | None = None  # a tracking URI or file-store folder: every trial an MLflow run
    pick: dict[str, float] | None = None  # weights that pick a multi-objective run's export
    api: bool = False  # asked through search.run: messages name its arguments, not the flags


def default_run_dir(space: Space) -> Path:
    """``runs/<space>-<date>-<time>-<6 hex>``: distinct for runs started in the same second."""
    return Path(f"runs/{space.name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}").resolve()


def named(name: str, api: bool) -> str:
    """Option ``name`` of :class:`RunOptions` as its caller names it: the command line's flag,
    or search.run's argument."""
    return options_named(RunOptions, name, api)


def check_run_state(run_dir: Path, resume: bool, space: Space, api: bool = False) -> None:
    """A fresh run needs a dir without a run; a resume needs one with a run that searched this
    space (read-only: the run dir is not touched).

    Raises:
        UserError: One line naming the run dir and what to do (in the caller's words: the
            command line's flags, or search.run's arguments with ``api``).
    """
    if resume:
        if not holds_run(run_dir):
            raise UserError(f"{named('resume', api)}: {run_dir} holds no run ({RunDir.STUDY} not found)")
        recorded = RunDir(run_dir).space
        if recorded.is_file():
            try:
                then = load_space(recorded)
            except UserError as exc:
                what = named("resume", api)
                raise UserError(f"{what}: the run's own space cannot be read: {exc}") from exc
            diff = space_difference(then, space)
            if diff is not None:
                raise UserError(
                    f"{named('resume', api)}: {run_dir} searched another space ({diff}); resume with "
                    f"the run's space ({recorded}), or start a new run with another {named('out', api)}"
                )
    elif holds_run(run_dir):
        raise UserError(
            f"{run_dir} already holds a run: add {named('resume', api)} to continue it, or pick "
            f"another {named('out', api)}"
        )


@dataclass(frozen=True)
class RunOptions:
    """What a caller asks of ``search run``: every option declared once (its flag, its help,
    the API's check); the command line's ``run`` parser and ``search.run``'s checks derive from
    these fields. ``data_options``: the data options given (by their argument names; the rest
    are the space's), read by ``search.data.data_options.data_options``."""

    space: str = option(None, "", "search-space YAML, e.g. spaces/residual.yaml", rule=PATH)
    data: list[str] | None = option(None, "--data", "data source", rule=DATA, cli=False)
    out: str | None = option(
        None, "--out", "run dir (default runs/<space>-<date>-<time>-<6 hex>)", rule=optional(PATH), api="out="
    )
    export: str | None = option(
        None, "--export", "best config.json path (default ./config.json)", rule=optional(PATH), api="export="
    )
    num_samples: int | None = option(
        None, "--num-samples", "trials in total (resume counts old ones)", rule=COUNT, parse=int
    )
    pack_size: int | str | None = option(
        None,
        "--pack-size",
        "trials trained as one fused model: an integer or auto",
        rule=PACK,
    )
    budget: float | None = option(
        None, "--budget", "mean cost per query the exported routers may spend", rule=NUMBER, parse=float
    )
    address: str | None = option(
        None, "--address", "Ray cluster: auto or ray://host:port (else RAY_ADDRESS)", rule=optional(TEXT)
    )
    storage: str | None = option(
        None, "--storage", "shared storage for cluster runs: absolute path or URI", rule=optional(TEXT)
    )
    pick: str | Mapping[str, float] | None = option(
        None,
        "--pick",
        "weights that pick the exported point of a multi-objective run's front, as "
        "metric=weight,... (default: 1 each)",
        rule=PICK,
        metavar="WEIGHTS",
    )
    mlflow: str | None = option(
        None,
        "--mlflow",
        "log every trial as an MLflow run (a tracking URI or a folder)",
        rule=optional(TEXT),
        metavar="URI",
    )
    resume: bool = option(
        False, "--resume", "continue the run dir given by --out", rule=FLAG, action="store_true"
    )
    verbose: bool = option(False, "--verbose", "also show Ray's own progress", rule=FLAG, action="store_true")
    debug: bool = option(False, "--debug", "show tracebacks", rule=FLAG, action="store_true", cli=False)
    warm_start: tuple[str, ...] = option(
        (),
        "--warm-start",
        "earlier run dirs whose finished trials fitting this space seed the sampler",
        rule=PATHS,
        nargs="+",
        metavar="RUN_DIR",
    )
    enqueue: tuple[Mapping[str, Any], ...] = option(
        (), "", "params to try first, in order (each a dict of the space's params)", rule=ENQUEUE, cli=False
    )
    data_options: Mapping[str, Any] = field(default_factory=dict)
    api: bool = False  # asked through search.run: messages name its arguments, not the flags

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        """The options a parsed ``run`` command line gives."""
        return cls(**given(args, cls), data_options=given(args, DataOptions))


def plan_run(args: RunOptions) -> RunPlan:
    """Every check that needs no Ray and no data: fails before anything starts or is written."""
    space = load_space(args.space)
    num_samples = args.num_samples if args.num_samples is not None else space.search.num_samples
    if not 1 <= num_samples <= MAX_SAMPLES:
        what = named("num_samples", args.api)
        raise UserError(f"{what} must be from 1 to {MAX_SAMPLES:,}, got {num_samples}")
    pack_size = parse_pack_size(str(args.pack_size)) if args.pack_size is not None else space.search.pack_size
    budget = args.budget if args.budget is not None else space.search.budget
    if budget is not None and not (budget > 0 and math.isfinite(budget)):
        raise UserError(f"{named('budget', args.api)} must be a cost per query > 0, got {budget}")
    if args.resume and not args.out:
        out = named("out", args.api) + ("" if args.api else " ")
        raise UserError(f"{named('resume', args.api)} needs {out}RUN_DIR: the run dir to continue")
    run_dir = Path(args.out).resolve() if args.out else default_run_dir(space)
    check_dir_target(run_dir, named("out", args.api))
    check_run_state(run_dir, args.resume, space, args.api)  # again once the run dir is locked
    address = args.address or os.environ.get("RAY_ADDRESS") or None
    if address == "local":
        address = None
    if address is not None:
        if not args.storage:
            raise UserError(
                f"{named('address', args.api)} {address}: cluster runs need {named('storage', args.api)}, "
                "an absolute path on shared storage or a URI that every node can reach"
            )
        check_reachable(address)
    storage_root = check_storage(args.storage) if args.storage else None
    if storage_root is not None and "://" not in storage_root:
        check_dir_target(Path(storage_root), named("storage", args.api))
    encoder = args.data_options.get("encoder")
    if len(space.data.encoders) > 1 and encoder:
        what = options_named(DataOptions, "encoder", args.api)
        raise UserError(
            f"{what} {encoder}: {args.space} lets the search choose among encoders "
            f"({', '.join(space.data.encoders)}); give the encoders in one place"
        )
    for earlier in args.warm_start or ():
        rd = RunDir(Path(earlier))
        if Path(earlier).resolve() == run_dir:
            raise UserError(
                f"{named('warm_start', args.api)} {earlier}: is this run's own dir; give earlier runs"
            )
        if not (rd.space.is_file() and rd.study.is_file()):
            raise UserError(
                f"{named('warm_start', args.api)} {earlier}: not a run dir (it holds no "
                f"{RunDir.SPACE} and {RunDir.STUDY})"
            )
    data_spec = data_source(args.data) or space.data.source()
    options = data_options(args.data_options, space.data.options())
    export = Path(args.export or space.export).resolve()
    check_file_target(export, named("export", args.api))
    return RunPlan(
        space,
        run_dir,
        export,
        data_spec,
        num_samples,
        address,
        str(run_dir),
        args.resume,
        args.verbose,
        args.debug,
        pack_size,
        budget,
        storage_root=storage_root,
        auto_named=not args.out,
        space_path=str(args.space),
        data_options=options,
        enqueue=[dict(p) for p in args.enqueue],
        warm_start=[str(Path(w).resolve()) for w in (args.warm_start or ())],
        mlflow=check_mlflow(args.mlflow),
        pick=parse_pick(args.pick, space.search) if args.pick is not None else None,
        api=args.api,
    )


# Trials per pack when the space says ``pack_size: auto``: the best measured on each kind of
# device (bench/peer.py and bench/packing.py on 2 CPU cores, bench/gpu.sh on one H200; see
# BENCHMARKS.md).
AUTO_PACK_SIZE = {"cpu": 8, "gpu": 64}


def parse_pack_size(value: str) -> int | str:
    """``--pack-size``: a positive integer or auto."""
    if value == "auto":
        return value
    # ASCII digits only: str.isdigit() also accepts '²', which int() refuses.
    if not re.fullmatch(r"[0-9]{1,9}", value) or not 1 <= int(value) <= MAX_PACK:
        what = named("pack_size", False)
        raise UserError(f"{what} {value!r}: must be an integer from 1 to {MAX_PACK} or auto")
    return int(value)


def resolve_pack_size(pack_size: int | str, on_gpu: bool, packable: bool, trials: int, slots: int) -> int:
    """The pack size a run uses. ``auto``: at most the device's measured best, evened out so the
    trials left fill every concurrent slot for the same number of rounds (no slot idles while
    one last pack trains); 1 for a model type that cannot be packed."""
    if pack_size == "auto":
        if not packable:
            return 1
        per_round = max(1, slots) * AUTO_PACK_SIZE["gpu" if on_gpu else "cpu"]
        rounds = max(1, -(-trials // per_round))
        return max(1, -(-trials // (max(1, slots) * rounds)))
    assert isinstance(pack_size, int)
    return pack_size


def uses_refill(search: SearchSpec, pack_size: int, on_gpu: bool) -> bool:
    """Whether running packs take new trials into freed slots: ``search.refill``, where
    ``auto`` is on for GPU packs of more than one in a search that need not be reproducible. On
    a GPU a pack's step costs about the same for one member as for 64 (it is bound by kernel
    launches), so a pack left with one survivor wastes the chip; on a CPU a pack is bound by
    arithmetic, and refilling it measured no faster (BENCHMARKS.md, Refill)."""
    if search.refill == "auto":
        return pack_size > 1 and on_gpu and not search.reproducible
    return bool(search.refill) and pack_size > 1


def make_fidelity(space: Space) -> Fidelity:
    """The run's :class:`Fidelity` from ``search.fidelity`` (``full_epoch: auto`` worked out
    from the pruner's rungs and the epochs)."""
    spec, pruner = space.search.fidelity, space.search.pruner
    epochs = space.max_epochs
    full = spec.full_epoch
    if full == "auto":
        full = max(1, -(-epochs // 2))
        if pruner.type in ("successive_halving", "hyperband") and pruner.min_resource != "auto":
            rungs = [
                pruner.min_resource * pruner.reduction_factor ** (pruner.min_early_stopping_rate + k)
                for k in range(64)
            ]
            within = [r for r in rungs if r <= epochs]
            full = within[-1] if within else full
    return Fidelity(spec.resource, spec.min_fraction, int(full), space.search.seed)


def parse_pick(value: str | Mapping[str, float], search: Any) -> dict[str, float]:
    """``--pick metric=weight,...`` (or a mapping): the weights that pick the exported front
    point; an objective left out weighs 0.

    Raises:
        UserError: Not a multi-objective search, a name that is not one of its objectives, a
            weight that is not a number >= 0, or no weight > 0 (one line each).
    """
    if not search.multi:
        raise UserError(
            f"--pick: needs a search over several metrics (search.metric a list); this one has "
            f"one: {search.primary}"
        )
    if isinstance(value, str):
        pairs: list[tuple[str, Any]] = []
        for part in value.split(","):
            name, eq, weight = part.strip().partition("=")
            if not eq or not name.strip():
                raise UserError(
                    f"--pick {value}: give metric=weight pairs separated by commas, e.g. "
                    f"{search.objectives[0]}=2,{search.objectives[1]}=1"
                )
            pairs.append((name.strip(), weight.strip()))
    else:
        pairs = list(value.items())
    weights: dict[str, float] = {}
    for name, weight in pairs:
        if name in weights:
            raise UserError(f"--pick: {name} is given twice; give each objective one weight")
        if name not in search.objectives:
            raise UserError(
                f"--pick: {name} is not an objective of this search; objectives: "
                f"{', '.join(search.objectives)}"
            )
        try:
            number = float(weight)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and number >= 0):
            raise UserError(f"--pick {name}={weight}: a weight must be a number >= 0")
        weights[name] = number
    if not any(w > 0 for w in weights.values()):
        raise UserError(f"--pick: at least one weight must be > 0, got {weights}")
    # only the ratios count: scaled so the largest is 1, any scale (1e308, 5e-324) picks alike
    top = max(weights.values())
    weights = {name: w / top for name, w in weights.items()}
    return weights


def check_mlflow(uri: str | None) -> str | None:
    """``--mlflow``: a tracking URI (``http://host:5000``, ``sqlite:///mlflow.db``,
    ``databricks``) or a folder (a database store is made in it: ``tracking.store_uri``), with
    MLflow installed; one line for anything else, before anything starts.

    Raises:
        UserError: Empty; neither a URI nor a folder path; a sqlite database or a folder that
            cannot be written; MLflow not installed.
    """
    if uri is None:
        return None
    if not uri.strip():
        raise UserError("--mlflow: give a tracking URI (http://host:5000, sqlite:///mlflow.db) or a folder")
    is_uri = uri == "databricks" or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", uri) is not None
    if not is_uri and ":" in uri:  # the form first: one line whether MLflow is installed or not
        raise UserError(
            f"--mlflow {uri!r}: neither a tracking URI (scheme://..., sqlite:///FILE, databricks) nor a "
            "folder path"
        )
    try:
        import mlflow  # noqa: F401
    except ImportError as exc:
        raise UserError(f'--mlflow {uri}: needs MLflow: pip install "router-search[mlflow]"') from exc
    if is_uri:
        if uri.startswith("sqlite:///"):
            folder = Path(uri.removeprefix("sqlite:///")).expanduser().resolve().parent
            if not folder.is_dir() or not os.access(folder, os.W_OK):
                raise UserError(
                    f"--mlflow {uri}: {folder} is not a folder this user can write the database in"
                )
        return uri
    check_dir_target(Path(uri).expanduser().resolve(), "--mlflow")
    return uri
