"""Reading a space: YAML (``yaml.safe_load``) to a validated Space, errors as one line with the
key path; and the Optuna sampler a space asks for (its pruner is ``search/study/pruners.py``'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from pydantic import ValidationError

from search.errors import SpaceError
from search.files.parse import MAX_SPACE_BYTES, ParseError, load_yaml, read_text
from search.space.schema import Space, error_text
from search.space.search_spec import AT, SamplerSpec


def _format_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith(("function-", "tagged-")))
    # Union types put the branch name in the path; keep the user's keys only.
    loc = ".".join(
        part
        for part in loc.split(".")
        if part
        not in {
            "FloatRange",
            "IntRange",
            "Choice",
            "CompactHidden",
            "float",
            "int",
            "str",
            "bool",
            "list[any]",
            "constrained-float",
            "constrained-int",
            "literal['auto']",
        }
    )
    msg = error_text(err)
    if msg.startswith(AT):
        return f"{loc}.{msg[1:]}" if loc else msg[1:]
    return f"{loc}: {msg}" if loc else msg


def parse_space(raw: Any, where: str = "space", name: str = "space") -> Space:
    """Validate a loaded YAML document into a Space.

    Raises:
        SpaceError: one line naming ``where`` and the key path.
    """
    if not isinstance(raw, dict):
        raise SpaceError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Space.model_validate({"name": name, **raw})
    except ValidationError as exc:
        raise SpaceError(f"{where}: {_format_error(exc)}") from exc


def load_space(path: str | Path) -> Space:
    """Read and validate a space YAML file: safe types only, UTF-8, at most 1 MiB, no duplicate
    keys, bounded alias expansion (``search/files/parse.py``)."""
    path = Path(path)
    try:
        raw = load_yaml(read_text(path, "space file", MAX_SPACE_BYTES), str(path))
    except ParseError as exc:
        raise SpaceError(str(exc)) from exc
    return parse_space(raw, str(path), name=path.stem)


def make_sampler(spec: SamplerSpec, seed: int) -> optuna.samplers.BaseSampler:
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.type == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=spec.population_size, seed=seed)
    return optuna.samplers.TPESampler(
        n_startup_trials=spec.n_startup_trials,
        multivariate=spec.multivariate,
        constant_liar=spec.constant_liar,
        seed=seed,
    )
