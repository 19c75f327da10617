"""A space's ``data:`` block: where the data comes from and how to read it (the same options as
the command line's, see ``search/data/data_options.py``; flags win over the space)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from search.data.data_options import FIELDS, DataOptions
from search.data.parts import check_parts
from search.data.scores import parse_rules, rule_text
from search.data.synthetic import SyntheticSpec
from search.errors import UserError
from search.limits import SEED_MAX
from search.space.params import Choice, Strict

Files = str | list[str] | None


class DataSpec(Strict):
    """Where the data comes from: ``path`` (a folder, built-in name, table or records),
    ``synthetic`` options, or files per split (``train``, ``val``, ``test``); how to read it; and
    ``encoder`` (one, or ``{choices: [...]}`` for the search to choose). ``embedding_dim``,
    when given, must match the data."""

    path: str | None = None
    synthetic: dict[str, Any] | None = None  # SyntheticSpec's options
    train: Files = None
    val: Files = None
    test: Files = None
    embedding_dim: int | None = Field(None, ge=1)
    embeddings: str | None = None
    align: Literal["row", "id"] | None = None
    id_column: str | None = None
    threshold: float | None = None
    seed: int | None = Field(None, ge=0, le=SEED_MAX)
    encoder: str | Choice | None = None
    template: str | None = None
    task_column: str | None = None
    metric_rule: str | float | dict[str, str | float] | None = None
    tasks: str | None = None
    dedupe: bool | None = None

    @field_validator("metric_rule")
    @classmethod
    def _metric_rule(cls, v: Any) -> str | None:
        try:
            return rule_text(parse_rules(v))
        except UserError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("synthetic")
    @classmethod
    def _synthetic(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        valid = [f.name for f in dataclasses.fields(SyntheticSpec)]
        unknown = sorted(set(v) - set(valid))
        if unknown:
            raise ValueError(f"unknown option(s) {unknown}; valid: {', '.join(valid)}")
        try:
            SyntheticSpec(**v)
        except (TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from exc
        return v

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v}")
        return v

    @field_validator("encoder", mode="before")
    @classmethod
    def _encoder(cls, v: Any) -> Any:
        if isinstance(v, dict):
            choice = Choice.model_validate(v)
            if not all(isinstance(c, str) and c for c in choice.choices):
                raise ValueError(f"choices must be encoder names or folders, got {choice.choices}")
            if len(set(choice.choices)) != len(choice.choices):
                raise ValueError(f"choices repeat an encoder: {choice.choices}")
            return choice
        return v

    @model_validator(mode="after")
    def _one(self) -> DataSpec:
        given = [k for k, v in (("path", self.path), ("synthetic", self.synthetic)) if v is not None]
        given += ["train/val/test files"] if self.parts else []
        if len(given) > 1:
            raise ValueError(f"give either {given[0]} or {given[1]}, not both")
        if self.parts:
            try:
                check_parts(self.parts)
            except UserError as exc:
                raise ValueError(str(exc)) from exc
        return self

    @property
    def parts(self) -> dict[str, list[str]]:
        return {
            s: [v] if isinstance(v, str) else list(v)
            for s in ("train", "val", "test")
            if (v := getattr(self, s))
        }

    def source(self) -> str | dict[str, list[str]]:
        if self.parts:
            return self.parts
        if self.path:
            return self.path
        return SyntheticSpec(**(self.synthetic or {})).source()

    @property
    def encoders(self) -> list[str]:
        """The encoders a search may use: one, the choices, or none (embeddings as given)."""
        if isinstance(self.encoder, Choice):
            return list(self.encoder.choices)
        return [self.encoder] if self.encoder else []

    def options(self) -> DataOptions:
        """How to read the data, as the space says (an encoder choice is left to the run)."""
        chosen = {name: getattr(self, name) for name in FIELDS}  # the same names as DataOptions'
        chosen["encoder"] = self.encoder if isinstance(self.encoder, str) else None
        return DataOptions().merged(**chosen)
