"""What a command talks to (streams, whether they are terminals) and how it ends (exit statuses)."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TextIO


class ExitStatus(IntEnum):
    """How a command ended; the help's exit-code list is generated from these and their meanings."""

    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    TEMPFAIL = 75
    INTERRUPTED = 130


#: what each status means for classify (other commands give their own meanings for some of them)
CLASSIFY_MEANINGS = {
    ExitStatus.OK: "every file classified",
    ExitStatus.SOME_FAILED: "some files failed (their rows say why)",
    ExitStatus.USAGE: "usage error, an unusable model (missing, tampered, unreadable) or output, other "
    "settings than the run being resumed, or no images found (nothing was written)",
    ExitStatus.TEMPFAIL: "another run holds the output's lock (EX_TEMPFAIL)",
    ExitStatus.INTERRUPTED: "interrupted (finished rows are kept in the partial file; rerun with --resume)",
}


def exit_codes_help(meanings: dict[ExitStatus, str]) -> str:
    """The 'exit codes:' block of a command's --help."""
    return "exit codes:\n" + "\n".join(f"  {int(s):<4} {text}" for s, text in sorted(meanings.items()))


@dataclass
class Environment:
    """The streams a command talks to, and whether they are terminals; tests swap this, not globals."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def stderr_isatty(self) -> bool:
        return hasattr(self.stderr, "isatty") and self.stderr.isatty()

    def error(self, message: str) -> None:
        print(f"fmnist-batch: error: {message}", file=self.stderr, flush=True)

    def info(self, message: str) -> None:
        print(message, file=self.stderr, flush=True)


class MissingExtra(Exception):
    """A command needs an optional extra that is not installed."""


def require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"this command needs {module}: pip install '.[{extra}]' in the fmnist-batch checkout"
        )
