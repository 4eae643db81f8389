"""Writing files safely: every file the tool writes goes through `atomic_write`.

A reader (another run, merge, a browser, cron's next job) sees either the old file or the whole new one,
never half of it, and a planted symlink is never followed: the temporary file is created with O_EXCL
under a random name in the destination's folder (tempfile.mkstemp), then renamed onto the destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any


def fsync_folder(path: str | os.PathLike) -> None:
    """Make a rename inside the folder of `path` durable (after a power cut: the old file or the new)."""
    fd = os.open(os.path.dirname(os.fspath(path)) or os.curdir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_sibling(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, str]:
    """A new file next to `path` (same folder, so a rename onto it is atomic): (descriptor, name).

    O_EXCL and a random name: a symlink or file planted at a predictable name is never opened.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    return tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=folder)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of `path` for writing; on a clean exit flush, fsync and rename it onto
    `path`; on an exception remove it and leave `path` as it was."""
    fd, temporary = temporary_sibling(path)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        fsync_folder(path)


def _umask() -> int:
    # mkstemp creates 0600; the finished file gets the permissions an ordinary open() would give it
    mask = os.umask(0)
    os.umask(mask)
    return mask
