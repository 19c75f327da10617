"""``search serve``: a saved router behind HTTP (the routing API, and with ``--backends`` a
routing proxy for OpenAI-style clients). The command parses its flags into ``ServeSettings``
and calls ``search.serve.server.serve``, which does the work."""

from __future__ import annotations

import argparse
import os

from search.options import add_flags, given
from search.serve.settings import TOKEN_ENV, ServeSettings


def add_serve_parser(sv: argparse.ArgumentParser) -> None:
    """The ``serve`` command's arguments, on its parser: the router, where its parts are, and
    every setting as ``ServeSettings`` declares it."""
    sv.add_argument("router", help="a saved router (.pt) or a run dir (its recommended router)")
    sv.add_argument("--encoder", help="a local copy of the router's encoder (checked against its identity)")
    sv.add_argument("--backends", help="backends.yaml: per LLM, its OpenAI-compatible base URL and model")
    sv.add_argument("--token-file", help=f"file holding the bearer token (else ${TOKEN_ENV})")
    add_flags(sv, ServeSettings, help_default=True)


def cmd_serve(args: argparse.Namespace) -> int:
    # Idle compute threads sleep instead of spinning: the event loop shares the cores with them
    # (measured on 2 cores: text requests at concurrency 8 went from 23/s to 47/s). Set before
    # torch is imported, which reads it once.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from search.serve.server import read_token, serve

    values = given(args, ServeSettings)
    settings = ServeSettings(**{**values, "token": read_token(args.token_file, dict(os.environ))})
    return serve(args.router, settings, encoder=args.encoder, backends=args.backends)
