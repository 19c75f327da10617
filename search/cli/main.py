"""The command line: run, validate, train, route, onboard, serve, dashboard, data, report.

``main(argv) -> int``; user errors print one line and return 2 (a traceback only with --debug).
Nothing heavy is imported before ``main`` runs, so Ctrl-C at any moment (torch takes seconds to
import) is ``interrupted`` and exit 130.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from search.errors import DISK_ERRORS, UserError, one_line
from search.files.paths import check_dir_target
from search.log import plain_output


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every user error
        raise UserError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    from search.cli.dashboard import add_dashboard_parser
    from search.cli.data_args import add_data_options  # imports numpy and pyarrow: inside main
    from search.cli.onboard import add_onboard_parser
    from search.cli.serve import add_serve_parser
    from search.driver.plan import RunOptions
    from search.options import add_flags

    # the flags every command takes, declared once
    shared = _Parser(add_help=False)
    shared.add_argument("--debug", action="store_true", help="show the traceback of an error")
    parser = _Parser(prog="python -m search", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[shared])

    run = command("run", "search a space (the main job)")
    add_flags(run, RunOptions, only=("space",))
    add_data_options(run)
    add_flags(run, RunOptions, skip=("space",))

    val = command("validate", "parse a space and print it resolved")
    val.add_argument("space")

    train = command("train", "train one config.json, or several as one pack")
    train.add_argument("config", nargs="+", help="config.json files (pipeline_config form)")
    add_data_options(train)
    train.add_argument("--out", help="output dir (default runs/train-<date>-<time>)")
    train.add_argument("--epochs", type=int, help="override train_config.epochs")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    train.add_argument(
        "--seed", type=int, help="seeds the models' init and dropout (default: the trial's, else 0)"
    )
    train.add_argument("--metric", help="picks the best epoch (default: the search's, else val_loss)")

    rt = command("route", "send new queries to LLMs with a saved router")
    rt.add_argument("router", help="a saved router (best_router.pt, ensemble_router.pt, ...) or a run dir")
    rt.add_argument("embeddings", nargs="?", help="the queries' embeddings (.npy or .pth), one row per query")
    rt.add_argument("--text", action="append", help="a prompt to route (repeatable)")
    rt.add_argument(
        "--prompts", help="prompts: .jsonl/.json records, .csv/.parquet with a text column, .txt lines"
    )
    rt.add_argument("--encoder", help="a local copy of the router's encoder (checked against its identity)")
    rt.add_argument("--out", default="routes.csv", help="routes file, .csv or .parquet (default routes.csv)")
    rt.add_argument("--plain", action="store_true", help="plain argmax: ignore the router's saved offsets")
    rt.add_argument("--scores", action="store_true", help="also every LLM's predicted correctness")
    rt.add_argument("--budget", type=float, help="meet this mean cost per query (by the router's val curve)")
    rt.add_argument("--lambda", dest="lam", type=float, help="route at this willingness to pay")
    rt.add_argument(
        "--task", help="every query's task, for a router with a task prior (prompts files: a task field)"
    )

    data = command("data", "describe, convert or embed router data")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    describe = data_sub.add_parser(
        "describe", help="sizes, positive rate, costs, baselines, texts", parents=[shared]
    )
    add_data_options(describe, source="positional", seed_alias=True)
    describe.add_argument("--all", action="store_true", help="list every model")
    convert = data_sub.add_parser("convert", help="write any source in the parquet layout", parents=[shared])
    add_data_options(convert, source="positional", seed_alias=True)
    convert.add_argument("dst", help="a new (or empty) folder")
    embed = data_sub.add_parser(
        "embed", help="embed a source's texts with an encoder into OUT.npy", parents=[shared]
    )
    add_data_options(embed, source="positional", seed_alias=True)
    embed.add_argument("out", help="the embeddings file to write (.npy), one row per question")

    add_onboard_parser(
        command("onboard", "add LLMs to a saved router from a few scored questions, or drop some")
    )
    add_serve_parser(command("serve", "serve a saved router over HTTP (routing API and proxy)"))
    add_dashboard_parser(command("dashboard", "watch a run's study in a browser (live while it runs)"))

    report = command("report", "write report.md and plots for a run dir")
    report.add_argument("run_dir")
    return parser


def _source(args: argparse.Namespace) -> Any:
    from search.data import load_data
    from search.data.data_options import data_options
    from search.data.parts import data_source

    return load_data(data_source(args.src), data_options(args))


def _cmd_data(args: argparse.Namespace) -> int:
    from search.data import write_parquet_layout

    if args.data_command == "describe":
        from search.data.summary import describe

        data = _source(args)
        print(describe(data, top=data.num_models if args.all else 10))
        return 0
    if args.data_command == "embed":
        from search.cli.embed import run_embed

        return run_embed(args)
    dst = Path(args.dst)
    check_dir_target(dst, "convert DST")
    if dst.exists() and any(dst.iterdir()):
        raise UserError(f"{dst}: destination exists and is not empty; choose a new folder")
    data = _source(args)
    write_parquet_layout(data, dst)
    costs = ", with costs" if data.has_costs else ""
    print(
        f"wrote {dst} ({sum(len(v) for v in data.splits.values())} questions, {data.num_models} models, "
        f"{data.embedding_dim}-d{costs}, parquet layout)"
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from search.api import train_with
    from search.data.data_options import data_options

    trained = train_with(
        args.config,
        args.data,
        args.out,
        data_options(args),
        epochs=args.epochs,
        device=args.device,
        seed=args.seed,
        metric=args.metric,
    )
    return 1 if any(r.status == "failed" for r in trained) else 0


def _cmd_route(args: argparse.Namespace) -> int:
    from search.cli.route import run_route

    return run_route(
        args.router,
        args.embeddings,
        args.out,
        plain=args.plain,
        scores=args.scores,
        texts=args.text,
        prompts=args.prompts,
        encoder=args.encoder,
        budget=args.budget,
        lam=args.lam,
        task=args.task,
    )


def _cmd_onboard(args: argparse.Namespace) -> int:
    from search.cli.onboard import cmd_onboard

    return cmd_onboard(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    from search.cli.serve import cmd_serve

    return cmd_serve(args)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from search.cli.dashboard import cmd_dashboard

    return cmd_dashboard(args)


def _cmd_validate(args: argparse.Namespace) -> int:
    from search.space import load_space

    print(load_space(args.space).describe())
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from search.api import run_with
    from search.driver.plan import RunOptions

    return run_with(RunOptions.from_args(args), hard_exit=True).code


def _cmd_report(args: argparse.Namespace) -> int:
    from search.results.report import write_report

    path = write_report(Path(args.run_dir))
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "run": _cmd_run,
    "validate": _cmd_validate,
    "train": _cmd_train,
    "route": _cmd_route,
    "onboard": _cmd_onboard,
    "serve": _cmd_serve,
    "dashboard": _cmd_dashboard,
    "data": _cmd_data,
    "report": _cmd_report,
}


def user_message(exc: BaseException) -> str | None:
    """The one line for an error that is the user's or the machine's to fix; None for a bug."""
    if isinstance(exc, UserError):
        return str(exc)
    factory = sys.modules.get("router_models.model_factory")  # imported once a model was built
    if factory is not None and isinstance(exc, factory.ConfigError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_ERRORS:
        where = exc.filename or "a file it writes"
        return f"{where}: {DISK_ERRORS[exc.errno]}; nothing was left half-written: free space and run again"
    return None


def _silence_stdout() -> None:
    """After a closed pipe (``... | head``): later writes, and the flush at exit, go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        with plain_output(logging.INFO):  # the library logs; the command line prints it plainly
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 141  # as a program killed by SIGPIPE
    except Exception as exc:
        message = user_message(exc)
        if message is None or debug:
            raise
        print(f"error: {one_line(message)}", file=sys.stderr)
        return 2


def cli() -> None:
    rc = main()
    try:
        sys.stdout.flush()  # here, not at exit: a closed pipe is quiet here
    except BrokenPipeError:
        _silence_stdout()
        rc = 141
    sys.exit(rc)


if __name__ == "__main__":
    cli()
