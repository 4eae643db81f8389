"""Inputs of a run (files, folders, glob patterns, paths listed on stdin) -> an ordered list of files.

Nothing here opens an image; the pipeline does that and turns a missing or broken file into an error row.

Order, stable from run to run:
- inputs in the order given;
- inside a folder, a depth-first walk: the names of each directory sorted (by code point), that
  directory's files first, then its subdirectories one after another (``a.jpg, z.jpg, sub/b.jpg``);
- a glob pattern's matches in that same order (``photos/*`` lists like a walk of ``photos``); a matched
  folder is walked where it falls.
Each file comes out once, however many inputs reach it (same real path = same file).

Sharding (``--shard K/N``) keeps the files whose shard key hashes into slice K of N. The key is the path
relative to the input that reached the file (the folder as given, or a glob pattern's folder before its
first wildcard), or the path as named for a file named explicitly or listed on stdin. So a file's slice
depends on neither the other files (adding files moves none) nor where the input folder is mounted or
how it is spelled (``photos``, ``./photos/``, ``/srv/share/photos``); hosts that split a folder must
run the same inputs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from fmnist_batch.labels import IMAGE_EXTENSIONS

#: The input that stands for "the paths listed on stdin".
STDIN = "-"

_GLOB_MAGIC = re.compile(r"[*?[]")
_READ_CHUNK = 64 * 1024
_SHARD_SYNTAX = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class InputFile:
    path: str  # the path to open
    # What the output's `path` column shows: the input as given, or the folder as given joined with the
    # path relative to it ("./photos" -> "./photos/shoes/a.jpg"). Equal to `path` today; kept separate so
    # the pipeline never has to guess which one to show.
    display: str
    #: the file's resolved path, as discovery de-duplicated it (a resumed run matches rows by it, however
    #: the inputs were spelled); empty for files made by hand, see `resolved`
    real_path: str = field(default="", compare=False)

    @property
    def resolved(self) -> str:
        return self.real_path or os.path.realpath(self.path)


class InputError(Exception):
    """An input the user named cannot be used; the message is fit to show as a usage error."""


@dataclass(frozen=True)
class Shard:
    """Slice `index` (counted from 1) of `count` stable slices of the inputs, as ``--shard K/N`` names it."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: K must be between 1 and N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/3"`` -> Shard(2, 3); ValueError with a message fit for a usage error otherwise."""
        match = _SHARD_SYNTAX.fullmatch(text)
        if match is None:
            raise ValueError(f"expected K/N (slice K of N, e.g. 1/3), got {text!r}")
        try:
            return cls(int(match[1]), int(match[2]))
        except ValueError:
            raise ValueError(f"K must be between 1 and N (1/3, 2/3, 3/3), got {text!r}") from None

    def holds(self, key: str) -> bool:
        return slice_of(key, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def slice_of(key: str, count: int) -> int:
    """The slice (1..count) a shard key falls in: the first 8 bytes of its BLAKE2b hash, modulo count."""
    digest = hashlib.blake2b(os.fsencode(key), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def shard_key(path: str, root: str) -> str:
    """What --shard hashes: `path` relative to `root` (the input that reached it) when it lies inside it,
    else `path` itself, normalised (``./a.jpg`` = ``a.jpg``)."""
    if root and path != root and path.startswith(root):
        inside = path[len(root) :]
        if root.endswith(os.sep) or inside.startswith(os.sep):
            return inside.lstrip(os.sep)
    return os.path.normpath(path)


def glob_root(pattern: str) -> str:
    """The folder a glob pattern starts from: its path before the first part with a wildcard."""
    parts = pattern.split(os.sep)
    literal = next(i for i, part in enumerate(parts) if is_glob(part))
    return os.sep.join(parts[:literal]) or (os.sep if pattern.startswith(os.sep) else "")


def is_glob(text: str) -> bool:
    return _GLOB_MAGIC.search(text) is not None


def _is_pattern(name: str) -> bool:
    # An existing name wins over pattern syntax: "shoot[1].jpg" may simply be a file.
    return is_glob(name) and not os.path.lexists(name)


def check_inputs(inputs: Sequence[str]) -> None:
    """Raise InputError for a named path that does not exist or a glob pattern that matches nothing.

    Call it before any work is done, so a typo costs a usage error rather than a run.
    """
    for name in inputs:
        if name == STDIN:
            continue
        if _is_pattern(name):
            # Stops at the first match, so a big tree is not walked twice.
            if next(_Finder(recursive=True, extensions=()).expand_glob(name), None) is None:
                raise InputError(f"glob matched nothing: {name!r}")
        elif not os.path.exists(name):
            raise InputError(f"no such file or folder: {name!r}")


def iter_paths_from_stream(stream: TextIO | BinaryIO, *, nul: bool = False) -> Iterator[str]:
    """Paths listed one per line (``\\r`` stripped, blank lines skipped) or NUL-separated (``nul=True``,
    as ``find -print0`` writes), yielded as they arrive.

    Give a binary stream (``sys.stdin.buffer``) so names that are not valid UTF-8 survive: bytes go through
    os.fsdecode, like the names os.scandir returns.
    """
    if nul:
        yield from _nul_separated(stream)
        return
    for line in stream:
        name = line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n")
        if name.strip():
            yield os.fsdecode(name)


def _nul_separated(stream: TextIO | BinaryIO) -> Iterator[str]:
    source = getattr(stream, "buffer", stream)
    # read1 returns what is available now; read(n) on a pipe would wait for n bytes from a slow `find`.
    read = getattr(source, "read1", source.read)
    pending = None
    while chunk := read(_READ_CHUNK):
        pending = chunk if pending is None else pending + chunk
        *names, pending = pending.split(b"\0" if isinstance(chunk, bytes) else "\0")
        yield from (os.fsdecode(name) for name in names if name)
    if pending:
        yield os.fsdecode(pending)


def discover(
    inputs: Iterable[str],
    *,
    recursive: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    on_warning: Callable[[str], None] | None = None,
    stdin_paths: Iterable[str] | None = None,
    shard: Shard | None = None,
    on_other_slice: Callable[[InputFile], None] | None = None,
) -> Iterator[InputFile]:
    """The files to classify, lazily, in the order described in the module docstring.

    - A file named explicitly is always included, whatever its extension or whether it exists (a missing
      one becomes an error row downstream; lists piped in may name files that have vanished since).
    - A folder is walked (only its own files when ``recursive`` is False), keeping regular files whose
      extension is in ``extensions`` (case-insensitive) and skipping hidden names (starting with ".").
      Symlinked folders are followed; each directory is walked once, which also ends symlink loops.
      A folder that cannot be read is reported through ``on_warning`` and skipped.
    - A glob pattern (``*``, ``?``, ``[``; ``**`` spans folders) is expanded like
      ``glob.glob(pattern, recursive=True)`` (wildcards do not match hidden names), but lazily and
      loop-safe; matched files are filtered by extension and matched folders are walked.
    - ``-`` stands for ``stdin_paths`` when they are given (see iter_paths_from_stream): each listed name
      is taken literally, never as a pattern, and otherwise treated like a named input. Without
      stdin_paths, ``-`` is just a name.
    - With ``shard``, only the files in that slice (see the module docstring); the others go to
      ``on_other_slice``. Files are de-duplicated before slicing, so slices never overlap.
    """
    finder = _Finder(recursive=recursive, extensions=extensions, on_warning=on_warning)

    def sliced(files: Iterator[InputFile], root: str) -> Iterator[InputFile]:
        if shard is None:
            yield from files
            return
        for file in files:
            if shard.holds(shard_key(file.display, root)):
                yield file
            elif on_other_slice is not None:
                on_other_slice(file)

    for name in inputs:
        if name == STDIN and stdin_paths is not None:
            for listed in stdin_paths:
                yield from sliced(finder.named(listed), listed)
        elif _is_pattern(name):
            root = glob_root(name)
            for path, is_dir, is_link in finder.expand_glob(name):
                if is_dir:
                    yield from sliced(finder.walk(path), root)
                elif finder.wanted(path):
                    yield from sliced(finder.once(path, is_link), root)
        else:
            yield from sliced(finder.named(name), name)


class _Finder:
    """The state one discovery shares across its inputs: the files already yielded, folders already walked."""

    def __init__(
        self,
        *,
        recursive: bool,
        extensions: Sequence[str],
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.recursive = recursive
        # Accept "png" as well as ".png"; compare lower-cased so ".JPG" matches.
        self.extensions = tuple("." + ext.lower().lstrip(".") for ext in extensions)
        self.on_warning = on_warning
        self.seen_files: set[str] = set()  # real paths; strings keep this modest even for 1M files
        self.walked_dirs: set[tuple[int, int]] = set()  # (st_dev, st_ino)
        self._real_folder: tuple[str | None, str] = (None, "")  # (folder, its real path) of the latest file

    def named(self, path: str) -> Iterator[InputFile]:
        if os.path.isdir(path):
            yield from self.walk(path)
        else:
            yield from self.once(path, is_link=True)

    def walk(self, top: str) -> Iterator[InputFile]:
        # An explicit stack of sorted subfolder iterators: no recursion limit on deep trees, and each
        # directory is listed only when the walk reaches it, so the first files come out at once.
        pending: list[Iterator[str]] = [iter([top])]
        while pending:
            directory = next(pending[-1], None)
            if directory is None:
                pending.pop()
                continue
            if not self._first_visit(directory):
                continue
            subfolders = []
            for name, is_dir, is_link in self._entries(directory):
                path = os.path.join(directory, name)
                if is_dir:
                    subfolders.append(path)
                elif self.wanted(name):
                    yield from self.once(path, is_link)
            if self.recursive:
                pending.append(iter(subfolders))

    def expand_glob(self, pattern: str) -> Iterator[tuple[str, bool, bool]]:
        """(path, is_dir, is_symlink) of the folders and regular files matching pattern, in walk order.

        Written out rather than glob.glob, which lists everything before it can be sorted and never
        returns from `**` over a symlink loop."""
        parts = pattern.split(os.sep)
        if parts[-1] == "**":
            # Everything below, the files of the starting folder included, even when that is the current one.
            parts.append("*")
        base = glob_root(pattern)
        literal = next(i for i, part in enumerate(parts) if is_glob(part))
        return self._match(base, parts[literal:], frozenset())

    def _match(
        self, base: str, parts: list[str], ancestors: frozenset[tuple[int, int]]
    ) -> Iterator[tuple[str, bool, bool]]:
        head, rest = parts[0], parts[1:]
        if not is_glob(head):
            path = os.path.join(base, head)
            if rest:
                if os.path.isdir(path):
                    yield from self._match(path, rest, ancestors)
            else:
                is_dir = os.path.isdir(path)
                if is_dir or os.path.isfile(path):
                    yield path, is_dir, True  # whether it is a symlink is not known: resolve it
        elif head == "**":
            # Zero folders deep first, then each subfolder in turn; a folder already on the way down is a
            # symlink loop and ends this branch.
            key = _dir_key(base or os.curdir)
            if key is None or key in ancestors:
                return
            yield from self._match(base, rest, ancestors)
            for name, is_dir, _ in self._entries(base or os.curdir):
                if is_dir:
                    yield from self._match(os.path.join(base, name), parts, ancestors | {key})
        else:
            for name, is_dir, is_link in self._entries(
                base or os.curdir, include_hidden=head.startswith(".")
            ):
                if (is_dir or not rest) and fnmatch.fnmatchcase(name, head):
                    if rest:
                        yield from self._match(os.path.join(base, name), rest, ancestors)
                    else:
                        yield os.path.join(base, name), is_dir, is_link

    def _entries(self, directory: str, include_hidden: bool = False) -> list[tuple[str, bool, bool]]:
        """(name, is_dir, is_symlink) of the regular files in directory, then of its subfolders, each sorted
        by name (the walk order, which glob matches follow too).

        A broken symlink counts as a file, so it gets an error row like a missing file named outright;
        anything else (sockets, FIFOs that would block a reader) is left out."""
        entries = []
        try:
            with os.scandir(directory) as scan:
                for entry in scan:
                    if entry.name.startswith(".") and not include_hidden:
                        continue
                    try:
                        if entry.is_dir():
                            entries.append((entry.name, True, entry.is_symlink()))
                        elif entry.is_file() or _is_broken_link(entry):
                            entries.append((entry.name, False, entry.is_symlink()))
                    except OSError:  # vanished or unreadable since it was listed
                        continue
        except OSError as e:
            self._warn(f"cannot read folder {directory!r}: {e.strerror}")
            return []
        entries.sort(key=lambda entry: (entry[1], entry[0]))
        return entries

    def _first_visit(self, directory: str) -> bool:
        key = _dir_key(directory)
        if key is None:
            self._warn(f"cannot read folder {directory!r}")
            return False
        if key in self.walked_dirs:
            return False
        self.walked_dirs.add(key)
        return True

    def wanted(self, path: str) -> bool:
        return path.lower().endswith(self.extensions)

    def once(self, path: str, is_link: bool) -> Iterator[InputFile]:
        """path, unless a file with the same real path came out already."""
        if is_link:
            real_path = os.path.realpath(path)
        else:
            # A plain entry's real path is its folder's plus its name: one realpath per folder, not per file.
            folder, name = os.path.split(path)
            if folder != self._real_folder[0]:
                self._real_folder = (folder, os.path.realpath(folder))
            real_path = os.path.join(self._real_folder[1], name)
        if real_path not in self.seen_files:
            self.seen_files.add(real_path)
            yield InputFile(path=path, display=path, real_path=real_path)

    def _warn(self, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(message)


def _is_broken_link(entry: os.DirEntry) -> bool:
    return entry.is_symlink() and not os.path.exists(entry.path)


def _dir_key(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
