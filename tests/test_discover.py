from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator

import pytest
from unprivileged import run_unprivileged

from fmnist_batch.discover import InputError, InputFile, check_inputs, discover, iter_paths_from_stream


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # Relative inputs keep the expected display paths short and readable.
    monkeypatch.chdir(tmp_path)


def touch(*names: str) -> None:
    for name in names:
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        open(name, "wb").close()


def shown(inputs, **kwargs) -> list[str]:
    return [f.display for f in discover(inputs, **kwargs)]


def finishes(make_list, seconds: float = 10.0) -> list[str]:
    """The list make_list() builds, failing (rather than hanging the suite) if it takes too long."""
    result: list[list[str]] = []
    worker = threading.Thread(target=lambda: result.append(make_list()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert result, f"did not finish within {seconds}s"
    return result[0]


def test_folder_order_is_sorted_files_first_then_subfolders_and_stable():
    touch(
        "photos/b.jpg",
        "photos/a.jpg",
        "photos/Z.jpg",
        "photos/sub/c.jpg",
        "photos/aa/d.jpg",
        "photos/aa/x/e.png",
    )
    expected = [
        "photos/Z.jpg",
        "photos/a.jpg",
        "photos/b.jpg",
        "photos/aa/d.jpg",
        "photos/aa/x/e.png",
        "photos/sub/c.jpg",
    ]
    assert shown(["photos"]) == expected
    assert shown(["photos"]) == expected


def test_inputs_keep_their_order():
    touch("b/1.jpg", "a/2.jpg", "c.jpg")
    assert shown(["c.jpg", "b", "a"]) == ["c.jpg", "b/1.jpg", "a/2.jpg"]


def test_display_is_the_folder_as_given_joined_with_the_relative_path(tmp_path):
    touch("photos/shoes/a.jpg")
    assert shown(["./photos"]) == ["./photos/shoes/a.jpg"]
    assert shown(["photos/"]) == ["photos/shoes/a.jpg"]
    absolute = str(tmp_path / "photos")
    assert shown([absolute]) == [os.path.join(absolute, "shoes", "a.jpg")]
    (found,) = discover(["./photos"])
    assert found == InputFile(path="./photos/shoes/a.jpg", display="./photos/shoes/a.jpg")
    assert os.path.isfile(found.path)


def test_no_recursive_keeps_only_the_folders_own_files():
    touch("photos/a.jpg", "photos/sub/b.jpg")
    assert shown(["photos"], recursive=False) == ["photos/a.jpg"]
    assert shown(["photos"]) == ["photos/a.jpg", "photos/sub/b.jpg"]


def test_extensions_compare_case_insensitively():
    touch("p/a.JPG", "p/b.Png", "p/c.jpeg", "p/d.txt", "p/e.jpg.bak", "p/f")
    assert shown(["p"]) == ["p/a.JPG", "p/b.Png", "p/c.jpeg"]


def test_custom_extensions_with_or_without_the_dot():
    touch("p/a.jpg", "p/b.raw", "p/c.TIFF", "p/d.Raw")
    assert shown(["p"], extensions=[".RAW", "tiff"]) == ["p/b.raw", "p/c.TIFF", "p/d.Raw"]


def test_hidden_files_and_folders_are_skipped_in_walks_and_globs():
    touch("p/.hidden.jpg", "p/.cache/a.jpg", "p/sub/.thumbs/b.jpg", "p/sub/c.jpg", "p/d.jpg")
    assert shown(["p"]) == ["p/d.jpg", "p/sub/c.jpg"]
    assert shown(["p/**/*.jpg"]) == ["p/d.jpg", "p/sub/c.jpg"]
    assert shown(["p/*"]) == ["p/d.jpg", "p/sub/c.jpg"]


def test_hidden_names_given_explicitly_are_used():
    touch("p/.hidden.jpg", "p/.cache/a.jpg", "p/.cache/.b.jpg")
    assert shown(["p/.hidden.jpg", "p/.cache"]) == ["p/.hidden.jpg", "p/.cache/a.jpg"]
    assert shown(["p/.*.jpg"]) == ["p/.hidden.jpg"]


def test_a_named_file_is_included_whatever_its_extension_and_even_if_missing():
    touch("notes.txt", "README")
    assert shown(["notes.txt", "README", "gone.jpg", "gone/too.png"]) == [
        "notes.txt",
        "README",
        "gone.jpg",
        "gone/too.png",
    ]


def test_each_file_once_when_named_twice_or_also_reached_through_a_folder():
    touch("p/a.jpg", "p/b.jpg")
    assert shown(["p/a.jpg", "p/a.jpg", "./p/a.jpg"]) == ["p/a.jpg"]
    assert shown(["p/b.jpg", "p"]) == ["p/b.jpg", "p/a.jpg"]
    assert shown(["p", "p/b.jpg", "p", "p/*.jpg"]) == ["p/a.jpg", "p/b.jpg"]


def test_each_file_once_through_symlinks():
    touch("real/a.jpg", "real/b.jpg")
    os.symlink("real", "linked_dir")
    os.symlink("real/a.jpg", "alias.jpg")
    assert shown(["real", "linked_dir", "alias.jpg"]) == ["real/a.jpg", "real/b.jpg"]
    # A symlinked folder is followed when it is the first way to the files.
    assert shown(["linked_dir", "real"]) == ["linked_dir/a.jpg", "linked_dir/b.jpg"]


def test_symlinked_folders_inside_a_walk_are_followed():
    touch("p/a.jpg", "elsewhere/b.jpg")
    os.symlink(os.path.abspath("elsewhere"), "p/more")
    assert shown(["p"]) == ["p/a.jpg", "p/more/b.jpg"]


def test_symlink_loops_terminate():
    touch("p/a.jpg", "p/sub/b.jpg")
    os.symlink("..", "p/sub/up")
    os.symlink(".", "p/sub/self")
    os.symlink("../..", "p/sub/top")
    expected = ["p/a.jpg", "p/sub/b.jpg"]
    assert finishes(lambda: shown(["p"])) == expected
    assert finishes(lambda: shown(["p/**/*.jpg"])) == expected
    assert finishes(lambda: shown(["p/**"])) == expected


def test_broken_symlinks_are_listed_for_an_error_row_and_fifos_are_skipped_in_walks():
    touch("p/a.jpg")
    os.symlink("nowhere.jpg", "p/broken.jpg")
    os.symlink("nowhere.txt", "p/broken.txt")  # not an image name: not wanted either way
    os.mkfifo("p/pipe.jpg")  # opening it would block the reader
    assert shown(["p"]) == ["p/a.jpg", "p/broken.jpg"]
    assert shown(["p/*.jpg"]) == ["p/a.jpg", "p/broken.jpg"]


def test_globs_are_expanded_sorted_and_filtered_by_extension():
    touch("p/b.jpg", "p/a.jpg", "p/c.txt", "p/a1.png", "p/sub/d.jpg", "p/sub/deep/e.jpg", "top.jpg")
    assert shown(["p/*.jpg"]) == ["p/a.jpg", "p/b.jpg"]
    assert shown(["p/*"]) == ["p/a.jpg", "p/a1.png", "p/b.jpg", "p/sub/d.jpg", "p/sub/deep/e.jpg"]
    assert shown(["p/?.jpg", "p/a[0-9].*"]) == ["p/a.jpg", "p/b.jpg", "p/a1.png"]
    assert shown(["p/**/*.jpg"]) == ["p/a.jpg", "p/b.jpg", "p/sub/d.jpg", "p/sub/deep/e.jpg"]
    assert shown(["**/*.jpg"]) == ["top.jpg", "p/a.jpg", "p/b.jpg", "p/sub/d.jpg", "p/sub/deep/e.jpg"]
    assert shown(["*/sub/*.jpg"]) == ["p/sub/d.jpg"]


def test_a_glob_matching_folders_walks_them():
    touch("shoots/2024-01/a.jpg", "shoots/2024-02/b/c.jpg", "shoots/2023-12/old.jpg")
    assert shown(["shoots/2024-*"]) == ["shoots/2024-01/a.jpg", "shoots/2024-02/b/c.jpg"]
    assert shown(["shoots/2024-*"], recursive=False) == ["shoots/2024-01/a.jpg"]


def test_an_existing_name_with_glob_characters_is_taken_literally():
    touch("shot[1].jpg", "shot1.jpg")
    assert shown(["shot[1].jpg"]) == ["shot[1].jpg"]
    check_inputs(["shot[1].jpg"])


def test_a_walk_lists_each_folder_only_when_it_gets_there():
    # A folder with a million files must start yielding at once: nothing is listed ahead of the walk.
    touch("p/a/1.jpg", "p/b/.keep")
    files = discover(["p"])
    assert next(files).display == "p/a/1.jpg"
    touch("p/b/late.jpg")
    assert [f.display for f in files] == ["p/b/late.jpg"]


def _walk_with_warnings() -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    return shown(["p"], on_warning=warnings.append), warnings


def test_an_unreadable_folder_is_reported_and_skipped(open_tmp, monkeypatch):
    monkeypatch.chdir(open_tmp)
    touch("p/a.jpg", "p/locked/b.jpg", "p/z/c.jpg")
    os.chmod("p/locked", 0)
    found, warnings = run_unprivileged(_walk_with_warnings)
    assert found == ["p/a.jpg", "p/z/c.jpg"]
    assert len(warnings) == 1 and "p/locked" in warnings[0]


def test_stdin_newline_list_strips_cr_and_skips_blank_lines():
    stream = io.BytesIO("a.jpg\r\n\n   \nsub dir/b c.jpg\nété/ç.png".encode())
    assert list(iter_paths_from_stream(stream)) == ["a.jpg", "sub dir/b c.jpg", "été/ç.png"]
    text = io.StringIO("a.jpg\n\nb.jpg\n")
    assert list(iter_paths_from_stream(text)) == ["a.jpg", "b.jpg"]


def test_stdin_nul_list_keeps_newlines_and_odd_bytes_in_names():
    odd = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not valid UTF-8
    touch("new\nline.jpg", "naïve 😀.jpg", odd)
    stream = io.BytesIO(b"new\nline.jpg\0na\xc3\xafve \xf0\x9f\x98\x80.jpg\0\0caf\xe9.jpg\0")
    names = list(iter_paths_from_stream(stream, nul=True))
    assert names == ["new\nline.jpg", "naïve 😀.jpg", odd]
    assert all(os.path.isfile(name) for name in names)
    # A last name without a trailing NUL counts too.
    assert list(iter_paths_from_stream(io.BytesIO(b"a.jpg\0b.jpg"), nul=True)) == ["a.jpg", "b.jpg"]


class _Trickle(io.RawIOBase):
    """A pipe whose writer is slow: the first read gets one name, a second read must not happen yet."""

    def __init__(self, first: bytes) -> None:
        self.chunks = [first]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        assert self.chunks, "read past what the writer has sent"
        chunk = self.chunks.pop()
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_stdin_lists_are_read_lazily():
    names = iter_paths_from_stream(io.BufferedReader(_Trickle(b"a.jpg\0")), nul=True)
    assert next(names) == "a.jpg"

    def lines() -> Iterator[bytes]:
        yield b"a.jpg\n"
        raise AssertionError("read past the first line")

    assert next(iter_paths_from_stream(lines())) == "a.jpg"


def test_stdin_paths_are_named_inputs_taken_literally():
    touch("p/a.jpg", "p/b.jpg", "listed/c.jpg", "x[1].txt")
    stdin = iter_paths_from_stream(io.BytesIO(b"p/b.jpg\nvanished.jpg\nlisted\nx[1].txt\n*.jpg\n"))
    assert shown(["p", "-"], stdin_paths=stdin) == [
        "p/a.jpg",
        "p/b.jpg",  # listed again on stdin: still once
        "vanished.jpg",  # gone since it was listed: the pipeline makes it an error row
        "listed/c.jpg",
        "x[1].txt",
        "*.jpg",  # a name, not a pattern
    ]


def test_a_listed_name_is_never_read_as_stdin():
    touch("-")
    assert shown(["-"]) == ["-"]


def test_check_inputs_accepts_existing_paths_matching_globs_and_stdin():
    touch("p/a.jpg", "b.png")
    check_inputs(["p", "b.png", "p/*.jpg", "**/*.png", "-"])


def test_check_inputs_rejects_missing_paths_and_empty_globs():
    touch("p/a.jpg")
    with pytest.raises(InputError, match=r"no such file or folder: 'p/missing\.jpg'"):
        check_inputs(["p", "p/missing.jpg"])
    with pytest.raises(InputError, match=r"glob matched nothing: 'p/\*\.png'"):
        check_inputs(["p/*.png"])
    with pytest.raises(InputError, match="no such file or folder: 'nope'"):
        check_inputs(["nope"])
    os.symlink("nowhere", "dangling")
    with pytest.raises(InputError, match="dangling"):
        check_inputs(["dangling"])
