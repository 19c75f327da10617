"""How to read a source: the data options every command takes (``--embeddings``, ``--align``,
``--id-column``, ``--threshold``, ``--seed``, ``--encoder``, ``--template``), and the same keys
under ``data:`` in a space. Defined once here; the command line and the space schema fill it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from search.data.scores import parse_rules, rule_text
from search.errors import DataError
from search.limits import SEED_MAX

ALIGN = ("row", "id")
# The key of a trial's config (pipeline_config) and study param that names the encoder it
# chose, when a space lets the search choose (data: {encoder: {choices: [...]}}).
ENCODER_PARAM = "encoder"


@dataclass(frozen=True)
class DataOptions:
    """Args:
    embeddings: An embeddings file (.npy/.pth), one row per question of a table or records.
    align: Rows of ``embeddings`` by order (``row``) or by the integer id column (``id``).
    id_column: The id column of a table or the id key of records.
    threshold: Scores >= threshold count as correct (scores are 0/1 otherwise).
    seed: Seeds the split when the source has none (80/10/10, or val from train).
    encoder: The encoder that embeds the source's texts (a hub name or a folder), or made
        ``embeddings`` (its width is checked).
    template: How a record becomes text (``search/data/encode/template.py``).
    task_column: The column or field naming each question's task (default: task, category).
    metric_rule: How each task's scores count (``search/data/scores.py``), canonical text.
    tasks: A file joining questions to tasks (``search/data/tasks_file.py``).
    dedupe: Drop val and test questions that also occur in an earlier split (``leakage.py``).
    """

    embeddings: str | None = None
    align: str = "row"
    id_column: str | None = None
    threshold: float | None = None
    seed: int = 0
    encoder: str | None = None
    template: str | None = None
    task_column: str | None = None
    metric_rule: str | None = None
    tasks: str | None = None
    dedupe: bool = False

    def __post_init__(self) -> None:
        if self.align not in ALIGN:
            raise DataError(f"--align {self.align!r}: valid: {', '.join(ALIGN)}")
        if self.threshold is not None and not (
            isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold)
        ):
            raise DataError(f"--threshold must be a finite number, got {self.threshold}")
        if self.metric_rule is not None:  # canonical, so equal rules record and compare equal
            object.__setattr__(self, "metric_rule", rule_text(parse_rules(self.metric_rule)))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= SEED_MAX:
            raise DataError(f"--seed must be an integer from 0 to {SEED_MAX:,}, got {self.seed!r}")

    def merged(self, **given: Any) -> DataOptions:
        """These options with every given (not None) value replacing its own: flags over a space."""
        return dataclasses.replace(self, **{k: v for k, v in given.items() if v is not None})


FIELDS = [f.name for f in dataclasses.fields(DataOptions)]


# The names the command line (and the Python API) gives these options by; ``split_seed`` is
# ``seed``, ``metric_rule`` a list of rules.
FLAG_NAMES = (
    "embeddings",
    "align",
    "id_column",
    "threshold",
    "split_seed",
    "encoder",
    "template",
    "task_column",
    "metric_rule",
    "tasks",
    "dedupe",
)


def data_options(args: Any, base: DataOptions | None = None) -> DataOptions:
    """The options a command line gave (an argparse namespace of ``add_data_options``), over
    ``base`` (a space's ``data:``)."""
    return (base or DataOptions()).merged(
        embeddings=args.embeddings,
        align=args.align,
        id_column=args.id_column,
        threshold=args.threshold,
        seed=args.split_seed,
        encoder=args.encoder,
        template=args.template,
        task_column=args.task_column,
        metric_rule=",".join(args.metric_rule) if args.metric_rule else None,
        tasks=args.tasks,
        dedupe=True if args.dedupe else None,
    )
