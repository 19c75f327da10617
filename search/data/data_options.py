"""How to read a source: the data options every command takes (``--embeddings``, ``--align``,
``--id-column``, ``--threshold``, ``--split-seed``, ``--encoder``, ``--template``, ...), the same
arguments of ``search.run`` and ``search.train``, and the same keys under ``data:`` in a space.
Declared once here (``search/options.py``): the command line's flags, the API's checks and the
space's keys derive from these fields.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from search.arguments import FLAG, NUMBER, PATH, RULES, SEED, TEXT, optional
from search.data.scores import parse_rules, rule_text
from search.errors import DataError
from search.limits import SEED_MAX
from search.options import declared, given, named, option

ALIGN = ("row", "id")
# The key of a trial's config (pipeline_config) and study param that names the encoder it
# chose, when a space lets the search choose (data: {encoder: {choices: [...]}}).
ENCODER_PARAM = "encoder"


def _rules(value: Any) -> str | None:
    """``--metric-rule`` given as a list (repeatable flag) or one text: one canonical text."""
    if value is None or isinstance(value, str):
        return value
    return ",".join(value) if value else None


@dataclass(frozen=True)
class DataOptions:
    """How to read a source. Each field is an option (its flag, help and rule beside it)."""

    embeddings: str | None = option(
        None,
        "--embeddings",
        "embeddings file (.npy or .pth), one row per question",
        rule=optional(PATH),
    )
    align: str = option(
        "row", "--align", "embeddings rows by order (row) or by id (id)", rule=optional(TEXT), choices=ALIGN
    )
    id_column: str | None = option(
        None,
        "--id-column",
        "the id column (default: id, prompt_id, question_id, sample_id)",
        rule=optional(TEXT),
    )
    threshold: float | None = option(
        None,
        "--threshold",
        "a score >= this counts as correct (else grades in [0, 1] are kept)",
        rule=NUMBER,
        parse=float,
    )
    seed: int = option(
        0, "--split-seed", "seeds the split when the source has none", rule=SEED, parse=int, arg="split_seed"
    )
    encoder: str | None = option(
        None,
        "--encoder",
        "sentence-transformers model (hub name or folder) for texts",
        rule=optional(PATH),
    )
    template: str | None = option(
        None,
        "--template",
        "how a record becomes text, e.g. '{question}\\n{options:lettered}'",
        rule=optional(TEXT),
    )
    task_column: str | None = option(
        None,
        "--task-column",
        "the column or field naming each question's task (default: task, category)",
        rule=optional(TEXT),
    )
    metric_rule: str | None = option(
        None,
        "--metric-rule",
        "how a task's scores count: mean, positive or a threshold; TASK=RULE per task (repeatable)",
        rule=RULES,
        action="append",
    )
    tasks: str | None = option(
        None,
        "--tasks",
        "a table or JSON lines joining each question (by id or exact text) to its task",
        rule=optional(PATH),
    )
    dedupe: bool = option(
        False,
        "--dedupe",
        "drop val/test questions that also occur in an earlier split",
        rule=FLAG,
        action="store_true",
    )

    def __post_init__(self) -> None:
        if self.align not in ALIGN:
            raise DataError(f"{named(DataOptions, 'align', False)} {self.align!r}: valid: {', '.join(ALIGN)}")
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
        ):
            raise DataError(
                f"{named(DataOptions, 'threshold', False)} must be a finite number, got {self.threshold}"
            )
        if self.metric_rule is not None:  # canonical, so equal rules record and compare equal
            object.__setattr__(self, "metric_rule", rule_text(parse_rules(self.metric_rule)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            what = named(DataOptions, "seed", False)
            raise DataError(f"{what} must be an integer from 0 to {SEED_MAX:,}, got {self.seed!r}")

    def merged(self, **given_values: Any) -> DataOptions:
        """These options with every given (not None) value replacing its own: flags over a space."""
        return dataclasses.replace(self, **{k: v for k, v in given_values.items() if v is not None})


FIELDS = [f.name for f in dataclasses.fields(DataOptions)]
# The names the command line's namespace and the Python API give these options by.
FLAG_NAMES = tuple(opt.arg or name for name, opt in declared(DataOptions).items())


def data_options(args: Any, base: DataOptions | None = None) -> DataOptions:
    """The options a command line gave (a parsed namespace) or the API's keyword arguments
    (a mapping, by their argument names), over ``base`` (a space's ``data:``)."""
    values = given(args, DataOptions)
    values["metric_rule"] = _rules(values.get("metric_rule"))
    if values.get("dedupe") is False:
        values["dedupe"] = None  # not given: the space's word stands
    return (base or DataOptions()).merged(**values)
