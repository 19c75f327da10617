"""``search onboard``: new LLMs into a saved router from a few scored questions, LLMs out, and
which questions to score (``search/routing/onboard.py`` does the work)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pyarrow as pa

from search.data.data_options import DataOptions, data_options
from search.data.embedding import write_embeddings
from search.errors import UserError
from search.files.atomic import write_table
from search.files.paths import check_file_target
from search.options import add_flags

SUGGEST_DEFAULT = "suggested.csv"


def add_onboard_parser(ob: argparse.ArgumentParser) -> None:
    ob.add_argument("router", help="a saved router (.pt) or a run dir (its recommended router)")
    ob.add_argument(
        "--scores",
        action="append",
        help="the new LLMs' scores on some questions: records or a table, as --data (repeatable for parts)",
    )
    ob.add_argument("--drop", action="append", default=[], metavar="NAME", help="remove an LLM (repeatable)")
    ob.add_argument(
        "--out",
        help=f"the new router (.pt); with --suggest, the questions (.csv; default {SUGGEST_DEFAULT})",
    )
    ob.add_argument(
        "--suggest", type=int, metavar="K", help="write the K questions that tell most about a new LLM"
    )
    ob.add_argument(
        "--from",
        dest="pool",
        metavar="POOL",
        help="--suggest's candidates: a prompts file or embeddings (default: a run dir's train questions)",
    )
    ob.add_argument("--suggest-seed", type=int, default=0, help="--suggest's seed (default 0)")
    add_flags(ob, DataOptions)


def cmd_onboard(args: argparse.Namespace) -> int:
    from search.routing.onboard import onboard_router
    from search.routing.suggest import suggest_questions

    options = data_options(args)
    if args.suggest is not None:
        if args.scores or args.drop:
            raise UserError(
                "onboard: --suggest writes questions to score; give --scores/--drop in a second step"
            )
        out = Path(args.out or SUGGEST_DEFAULT)
        if out.suffix not in (".csv", ".parquet"):
            raise UserError(f"--out {out}: give a .csv or .parquet file for the suggested questions")
        check_file_target(out, "--out")
        s = suggest_questions(
            args.router, args.suggest, pool=args.pool, seed=args.suggest_seed, encoder=options.encoder
        )
        columns = (
            {"id": s.ids, s.text_field: s.texts} if any(t is not None for t in s.texts) else {"id": s.ids}
        )
        write_table(out, pa.table(columns))
        # their embeddings beside, row by row, with the record of the encoder that made them:
        # scored and fed back, nothing is embedded again (and a template's fields need not be)
        vectors = out.with_suffix(".npy")
        assert s.X is not None
        write_embeddings(vectors, s.X, s.identity)
        print(
            f"wrote {out} and {vectors.name}: {len(s.ids)} questions from {s.source} to score a new LLM "
            f"on; add a column of its scores (0/1 or graded), then: search onboard {args.router} "
            f"--scores {out} --embeddings {vectors} --out NEW.pt"
        )
        return 0
    if args.pool is not None:
        raise UserError(
            "onboard: --from is --suggest's pool; with --scores the questions are the scored ones"
        )
    if args.out is None:
        raise UserError("onboard: give --out NEW_ROUTER.pt (the router with the new LLMs)")
    check_file_target(Path(args.out), "--out")
    done = onboard_router(
        args.router,
        args.out,
        scores=args.scores,
        options=options,
        drop_names=args.drop,
        encoder=options.encoder,
    )
    for line in done.lines:
        print(line)
    print(f"wrote {done.path}: {len(done.names)} LLMs ({done.seconds:.2f} s)")
    return 0
