"""Run a check as an ordinary user, so permission errors are tested where CI runs as root.

As root, the check runs in a forked child whose effective user and group are nobody's: the kernel
then refuses it what it refuses any user (root reads every file). Imports are done before the fork, as
the interpreter itself lives under root's home. Not root: the check just runs.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOBODY = 65534


def run_unprivileged(check: Callable[..., Any], *args: Any) -> Any:
    """check(*args) as an unprivileged user; its return value, or its exception raised again here."""
    if os.geteuid() != 0:
        return check(*args)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, run, send back the outcome, never return into pytest
        os.close(read)
        try:
            os.setegid(NOBODY)
            os.seteuid(NOBODY)
            outcome = ("ok", check(*args))
        except BaseException as e:
            outcome = ("error", e)
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(outcome, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        kind, value = pickle.load(pipe)
    os.waitpid(pid, 0)
    if kind == "error":
        raise value
    return value


def open_folder() -> Path:
    """A new scratch folder an unprivileged user may enter (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="fmnist-unprivileged-"))
    folder.chmod(0o755)
    return folder
