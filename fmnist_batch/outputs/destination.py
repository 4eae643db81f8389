"""Where results go: checking an output path before any work, and the lock that keeps one run per output."""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat

from fmnist_batch.outputs.errors import OutputError, OutputLocked


def check_destination(output: str) -> None:
    """Raise OutputError unless a file named `output` can be created (not a folder, in a writable folder).

    Called before any image is decoded, so a typo in -o or --report does not cost a whole run."""
    if os.path.isdir(output):
        example = os.path.join(output, "results.csv")
        raise OutputError(f"output {output!r} is a folder; name a file in it, e.g. -o {example}")
    folder = os.path.dirname(output) or os.curdir
    if not os.path.isdir(folder):
        raise OutputError(f"the folder for {output!r} does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in folder {folder!r}: permission denied")


def is_device_or_pipe(output: str) -> bool:
    """True for /dev/null, a FIFO, a terminal...: written in place, as renaming a file onto one would
    replace it (as root)."""
    try:
        mode = os.stat(output).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def lock_path(output: str) -> str:
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.lock")


def lock_output(output: str, wait: bool = False) -> int:
    """Take an exclusive flock on a hidden sibling of `output`; returns the descriptor that holds it.

    flock belongs to the open file, so the kernel drops it when a run dies, even by SIGKILL: a stale lock
    file never blocks the next run. The holder deletes the file when done (release_lock), so a run that
    locked a file which was deleted meanwhile checks the inode and locks again."""
    path = lock_path(output)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"cannot create the lock file {path!r}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(
                f"another fmnist-batch run is writing {output!r} (it holds {path!r}); "
                "try again later, or pass --wait to queue behind it"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file while we waited: lock the new one


def release_lock(output: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock_path(output))  # while still holding it, so nobody else's lock file is removed
    os.close(fd)
