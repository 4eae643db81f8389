"""Writing files safely: every file the tool writes goes through `atomic_write` (or `write_beneath`, for
the many small files of --save-preprocessed).

A reader (another run, merge, a browser, cron's next job) sees either the old file or the whole new one,
never half of it, and a planted symlink is never followed: the temporary file is created with O_EXCL
under a random name in the destination's folder (tempfile.mkstemp), then renamed onto the destination.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator, Sequence
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


def write_beneath(root: str | os.PathLike, parts: Sequence[str], data: bytes) -> None:
    """Write `data` to root/parts[0]/.../parts[-1], replacing the file atomically and making the folders
    on the way, without ever following a symlink below `root` (the folder the user named): each folder is
    opened with O_NOFOLLOW relative to the one before (dir_fd), so a link planted at a folder's or the
    file's name raises OSError (ELOOP) instead of redirecting the write outside `root`."""
    *folders, name = parts
    os.makedirs(root, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for folder in folders:
            child = _enter_folder(fd, folder)
            os.close(fd)
            fd = child
        _replace_in(fd, name, data)
    finally:
        os.close(fd)


def _enter_folder(parent: int, name: str) -> int:
    """The folder `name` inside the open folder `parent`, made if missing; never a symlink's target."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, dir_fd=parent)
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as e:
        if _is_link(parent, name):  # Linux says ENOTDIR or ELOOP: say what it is
            raise _link_error(name) from e
        raise


def _replace_in(folder: int, name: str, data: bytes) -> None:
    if _is_link(folder, name):
        # rename would replace the link, not write through it; refused all the same, so the user learns
        # that someone planted it
        raise _link_error(name)
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o666, dir_fd=folder)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)  # not fsync'ed: a preview lost to a power cut is made again by the next run
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise


def _is_link(folder: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _link_error(name: str) -> OSError:
    return OSError(errno.ELOOP, f"{name!r} is a symbolic link; not followed")


def _umask() -> int:
    # mkstemp creates 0600; the finished file gets the permissions an ordinary open() would give it
    mask = os.umask(0)
    os.umask(mask)
    return mask
