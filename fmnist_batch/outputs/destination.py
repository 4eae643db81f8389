"""Where results go: checking an output path before any work, and the lock that keeps one run per output."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
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
    if not os.access(folder, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
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


def settings_path(output: str) -> str:
    """Where a finished output's settings are kept: a later --resume must not mix in rows made otherwise."""
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.settings.json")


def lock_output(output: str, wait: bool = False) -> int:
    """Take an exclusive flock on a hidden sibling of `output`; returns the descriptor that holds it.

    flock belongs to the open file, so the kernel drops it when a run dies, even by SIGKILL: a stale lock
    file never blocks the next run. The holder deletes the file when done (release_lock), so a run that
    locked a file which was deleted meanwhile checks the inode and locks again. The file is opened with
    O_NOFOLLOW and never truncated: a symlink planted at its name is removed, never followed."""
    path = lock_path(output)
    while True:
        fd = _open_lock_file(path)
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


def _open_lock_file(path: str) -> int:
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if e.errno != errno.ELOOP:
                raise OutputError(f"cannot create the lock file {path!r}: {e.strerror}") from e
            # a symlink: no run of ours makes one, so it is removed (the link itself, not its target)
            try:
                os.unlink(path)
            except OSError as e:
                raise OutputError(f"the lock file {path!r} is a symbolic link; remove it") from e
            continue
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
        os.close(fd)
        raise OutputError(f"the lock file {path!r} is not a regular file; remove it")


def remove_stale_temporaries(output: str) -> list[str]:
    """Remove the temporary files that runs on `output` killed mid-write left behind; returns their names.

    Call it holding the lock: then no live run on `output` has a temporary file. Only the names
    fmnist_batch.files.temporary_sibling gives `output`, its partial and its shard record are matched."""
    folder, name = os.path.split(os.path.abspath(output))
    ours = re.compile(rf"\.{re.escape(name)}(\.partial|\.shard\.json)?\.[a-z0-9_]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if ours.fullmatch(entry.name) and not entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return removed


def release_lock(output: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock_path(output))  # while still holding it, so nobody else's lock file is removed
    os.close(fd)
