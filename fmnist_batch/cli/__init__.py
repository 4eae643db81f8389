"""The command line: argument parsing and mapping errors to exit codes; the work is the library's."""

from fmnist_batch.cli.main import Environment, ExitStatus, build_parser, entry_point, main

__all__ = ["Environment", "ExitStatus", "build_parser", "entry_point", "main"]
