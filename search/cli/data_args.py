"""The data options every command that reads data takes, added to its parser from their one
declaration (``search.data.data_options.DataOptions``; read back by ``data_options`` and
``search.data.parts.data_source``)."""

from __future__ import annotations

import argparse

from search.data.data_options import DataOptions
from search.options import add_flags

SOURCE_HELP = "data: a folder, built-in name, table, records, synthetic[:...], or split=FILE parts"


def add_data_options(parser: argparse.ArgumentParser, source: str = "flag", seed_alias: bool = False) -> None:
    """``--data`` (repeatable; ``split=FILE`` parts) or a positional SRC..., and how to read it.

    Args:
        source: ``flag`` adds ``--data``; ``positional`` a ``src`` argument of one or more.
        seed_alias: ``--seed`` also sets the split seed (the data commands' older name).
    """
    if source == "flag":
        parser.add_argument("--data", action="append", help=SOURCE_HELP + " (repeatable for parts)")
    else:
        parser.add_argument("src", nargs="+", help=SOURCE_HELP)
    add_flags(parser, DataOptions, aliases={"seed": ("--seed",)} if seed_alias else None)
