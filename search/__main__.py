"""``python -m search``: the command line (see search/cli/main.py)."""

from search.cli.main import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    cli()
