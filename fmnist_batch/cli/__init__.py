"""The command line: argument parsing and mapping errors to exit codes; the work is the library's.

Each command lives in its own module (classify, merge, evaluate, train, serve) as an `add_*` function
that declares its arguments and a `run_*` function that calls the library and turns its answer into
messages on stderr and an exit status.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from fmnist_batch import __version__
from fmnist_batch.cli.arguments import UsageError, formatter
from fmnist_batch.cli.classify import add_classify
from fmnist_batch.cli.env import CLASSIFY_MEANINGS, Environment, ExitStatus, MissingExtra, exit_codes_help
from fmnist_batch.cli.evaluate import add_evaluate
from fmnist_batch.cli.merge import add_merge
from fmnist_batch.cli.serve import add_serve
from fmnist_batch.cli.train import add_eda, add_pair_photo_model, add_retrain

__all__ = ["Environment", "ExitStatus", "build_parser", "entry_point", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist-batch",
        description="Classify folders of product photos into the 10 Fashion-MNIST classes.",
        epilog=exit_codes_help(CLASSIFY_MEANINGS),
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_classify(sub)
    add_merge(sub)
    add_evaluate(sub)
    add_retrain(sub)
    add_pair_photo_model(sub)
    add_eda(sub)
    add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    env = env or Environment()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # what the model card records: the command as typed, also when main() is called from Python
        args.command_line = ["fmnist-batch", *(sys.argv[1:] if argv is None else argv)]
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 on --help
        return int(e.code or 0)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
    try:
        return int(args.run(args, env))
    except KeyboardInterrupt:
        hint = (
            "; finished rows are kept in the partial file (rerun with --resume to continue)"
            if args.command == "classify"
            else ""
        )
        env.error("interrupted" + hint)
        return ExitStatus.INTERRUPTED
    except Exception as e:
        status = _status_of(e)
        if status is None:
            raise
        env.error(str(e))
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _status_of(error: Exception) -> ExitStatus | None:
    """The exit status of an error the user can act on, or None for a bug (which keeps its traceback).
    The error classes are imported here, on failure, so a run's start-up does not import their modules."""
    from fmnist_batch.discover import InputError
    from fmnist_batch.engines.ray import RayUnavailable
    from fmnist_batch.evaluate import EvaluationError
    from fmnist_batch.model.card import ModelError
    from fmnist_batch.outputs.shards import MergeError
    from fmnist_batch.outputs.writer import OutputError, OutputLocked
    from fmnist_batch.training.data import DatasetError

    if isinstance(error, OutputLocked):
        return ExitStatus.TEMPFAIL
    usage_errors = (
        MissingExtra,
        UsageError,
        DatasetError,
        EvaluationError,
        InputError,
        MergeError,
        ModelError,
        OutputError,
        RayUnavailable,
    )
    if isinstance(error, usage_errors):
        return ExitStatus.USAGE
    return None


def _raise_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (cron timeouts, systemd) takes the same path as Ctrl-C: keep finished rows, exit 130.
    raise KeyboardInterrupt


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def entry_point() -> None:
    # Exit quietly when a pipeline's reader goes away (`fmnist-batch classify ... -o - | head`).
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = ExitStatus.SOME_FAILED
    sys.exit(status)
