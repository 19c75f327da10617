"""The data options every command that reads data takes, added to its parser in one place (read
back by ``search.data.options.data_options`` and ``search.data.parts.data_source``)."""

from __future__ import annotations

import argparse

from search.data.options import ALIGN


def add_data_options(parser: argparse.ArgumentParser, source: str = "flag", seed_alias: bool = False) -> None:
    """``--data`` (repeatable; ``split=FILE`` parts) or a positional SRC..., and how to read it.

    Args:
        source: ``flag`` adds ``--data``; ``positional`` a ``src`` argument of one or more.
        seed_alias: ``--seed`` also sets the split seed (the data commands' older name).
    """
    help_src = "data: a folder, built-in name, table, records, synthetic[:...], or split=FILE parts"
    if source == "flag":
        parser.add_argument("--data", action="append", help=help_src + " (repeatable for parts)")
    else:
        parser.add_argument("src", nargs="+", help=help_src)
    parser.add_argument("--embeddings", help="embeddings file (.npy or .pth), one row per question")
    parser.add_argument("--align", choices=ALIGN, help="embeddings rows by order (row) or by id (id)")
    parser.add_argument("--id-column", help="the id column (default: id, prompt_id, question_id, sample_id)")
    parser.add_argument(
        "--threshold", type=float, help="a score >= this counts as correct (else grades in [0, 1] are kept)"
    )
    parser.add_argument(
        "--task-column", help="the column or field naming each question's task (default: task, category)"
    )
    parser.add_argument(
        "--tasks", help="a table or JSON lines joining each question (by id or exact text) to its task"
    )
    parser.add_argument(
        "--metric-rule",
        action="append",
        help="how a task's scores count: mean, positive or a threshold; TASK=RULE per task (repeatable)",
    )
    parser.add_argument(
        "--dedupe", action="store_true", help="drop val/test questions that also occur in an earlier split"
    )
    names = ["--split-seed", "--seed"] if seed_alias else ["--split-seed"]
    parser.add_argument(*names, dest="split_seed", type=int, help="seeds the split when the source has none")
    parser.add_argument("--encoder", help="sentence-transformers model (hub name or folder) for texts")
    parser.add_argument(
        "--template", help="how a record becomes text, e.g. '{question}\\n{options:lettered}'"
    )
