"""Reading the photos out of a multipart/form-data request, as the body streams in, straight into memory.

Starlette's own form parser spools files over 1 MB to disk; here nothing is ever written to disk, the
size limit is enforced on the bytes received (not only on Content-Length), and a client that stops
sending in the middle of a body is dropped after `body_timeout` seconds instead of holding its
connection for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.exceptions import HTTPException

from fmnist_batch.serve.settings import MEGABYTE, ServeOptions

#: the form fields read as photos: `files` (the page, and curl -F files=@a -F files=@b), `file` (curl -F
#: file=@a, the name most upload examples use)
FIELD_NAMES = ("files", "file")


@dataclass
class Upload:
    filename: str
    data: bytearray = field(default_factory=bytearray)


def reject(status: int, detail: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=detail, headers=headers)


class _UploadCollector:
    """python-multipart callbacks that keep the photo parts in memory and count them."""

    def __init__(self, max_files: int):
        self.max_files = max_files
        self.uploads: list[Upload] = []
        self.finished = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._current: Upload | None = None
        self._nameless = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._header_name.extend(data[start:end]),
            "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _part_begin(self) -> None:
        self._disposition, self._current = b"", None

    def _header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if params.get(b"name", b"").decode("utf-8", "replace") not in FIELD_NAMES:
            return  # other fields are ignored, and their bytes are not kept
        if len(self.uploads) >= self.max_files:
            raise reject(413, f"too many files: at most {self.max_files} per request")
        filename = params.get(b"filename", b"").decode("utf-8", "replace")
        self._nameless = not filename
        self._current = Upload(filename or f"upload-{len(self.uploads) + 1}")
        self.uploads.append(self._current)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is not None:
            self._current.data.extend(data[start:end])

    def _part_end(self) -> None:
        # A browser sends an empty, nameless part for a file input with nothing chosen.
        if self._current is not None and self._nameless and not self._current.data:
            self.uploads.remove(self._current)
        self._current = None

    def _end(self) -> None:
        self.finished = True


async def body_chunks(request: Request, timeout: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; raises 408 when the client sends nothing for `timeout` seconds."""
    stream = request.stream()
    while True:
        try:
            chunk = await asyncio.wait_for(anext(stream), timeout)
        except StopAsyncIteration:
            return
        except TimeoutError:
            # The rest of the body will never be read, so the connection cannot serve another request.
            detail = f"request body timed out: nothing received for {timeout:g} s"
            raise reject(408, detail, {"Connection": "close"}) from None
        yield chunk


def _check_declared_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.isdigit():
        raise reject(400, "invalid Content-Length")
    if int(declared) > limit:
        raise _too_large(limit)


def _too_large(limit: int) -> HTTPException:
    return reject(413, f"upload too large: at most {limit / MEGABYTE:g} MB per request")


async def read_uploads(request: Request, options: ServeOptions) -> list[Upload]:
    """The files of a multipart request, read into memory while counting bytes; raises HTTPException."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise reject(415, f"send the photos as multipart/form-data, in fields named {FIELD_NAMES[0]!r}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise reject(400, "multipart/form-data without a boundary")
    limit = options.max_upload_bytes
    _check_declared_size(request, limit)
    collector = _UploadCollector(options.max_files)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    try:
        async for chunk in body_chunks(request, options.body_timeout):
            received += len(chunk)
            if received > limit:  # Content-Length can be absent (chunked) or lie
                raise _too_large(limit)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise reject(400, f"malformed multipart body: {e}") from None
    if not collector.finished:
        raise reject(400, "malformed multipart body: it ends before its closing boundary")
    return collector.uploads
