"""The web app behind `fmnist-batch serve`: a page to drop photos on, and a JSON API.

    GET  /              the page (one HTML file with its CSS and JS; no build step, nothing from a CDN)
    POST /api/classify  multipart/form-data, one or many parts named `files`; one result per file
    GET  /api/health    {"status": "ok", ...} and the server's limits
    GET  /api/model     the model card, plus "runtime": the backend, the file it runs and that file's
                        test accuracy

Uploads are parsed here, as they stream in, straight into memory (Starlette's own form parser spools
files over 1 MB to disk): the size limit is enforced on the bytes received, not only on Content-Length,
and nothing is ever written to disk. Each file goes through the same decoding and conversion as
`classify` (preprocess.load_image_bytes + convert_image) and gets the same fields as a CSV row
(pipeline.make_row), plus the 28x28 image the model saw as a base64 PNG.

Status codes: 200 with one result per file, in upload order (a file that is not a usable image has
status "error" and says why, like a CSV row); 400 no files, or a malformed multipart body; 413 the body
is larger than max_upload_bytes, or it holds more than max_files files; 415 not multipart/form-data.
Every error is JSON: {"detail": "..."}.
"""

from __future__ import annotations

import base64
import io
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from PIL import Image
from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from fmnist_batch import __version__
from fmnist_batch.convert import Conversion, PreprocessSettings, convert_image, load_image_bytes
from fmnist_batch.engines.predict import predicted_rows
from fmnist_batch.engines.workers import Converted, conversion_error
from fmnist_batch.job import load_job_model
from fmnist_batch.model.runtime import Model
from fmnist_batch.options import ClassifyOptions

FIELD_NAME = "files"
MEGABYTE = 1024 * 1024
PAGE_FILE = "web_app.html"
# The page may load nothing from elsewhere: no CDN, no fonts, no analytics; images are blob: and data: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class ServeOptions:
    """What the server classifies with (model, top-k, conversion settings) and its upload limits."""

    classify: ClassifyOptions = field(default_factory=ClassifyOptions)
    #: the largest request body accepted, in bytes (all files of one request together)
    max_upload_bytes: int = 20 * MEGABYTE
    #: the most files one request may hold
    max_files: int = 50

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be at least 1")
        if self.max_files < 1:
            raise ValueError("max_files must be at least 1")


@dataclass
class Upload:
    filename: str
    data: bytearray = field(default_factory=bytearray)


def _reject(status: int, detail: str) -> HTTPException:
    return HTTPException(status_code=status, detail=detail)


class _UploadCollector:
    """python-multipart callbacks that keep the parts named `files` in memory and count them."""

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
        if params.get(b"name") != FIELD_NAME.encode():
            return  # other fields are ignored, and their bytes are not kept
        if len(self.uploads) >= self.max_files:
            raise _reject(413, f"too many files: at most {self.max_files} per request")
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


async def read_uploads(request: Request, options: ServeOptions) -> list[Upload]:
    """The files of a multipart request, read into memory while counting bytes; raises HTTPException."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise _reject(415, f"send the photos as multipart/form-data, in fields named {FIELD_NAME!r}")
    boundary = params.get(b"boundary")
    if not boundary:
        raise _reject(400, "multipart/form-data without a boundary")
    limit = options.max_upload_bytes
    too_large = _reject(413, f"upload too large: at most {limit / MEGABYTE:g} MB per request")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _reject(400, "invalid Content-Length")
        if int(declared) > limit:
            raise too_large
    collector = _UploadCollector(options.max_files)
    parser = MultipartParser(boundary, collector.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:  # Content-Length can be absent (chunked) or lie
                raise too_large
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as e:
        raise _reject(400, f"malformed multipart body: {e}") from None
    if not collector.finished:
        raise _reject(400, "malformed multipart body: it ends before its closing boundary")
    return collector.uploads


def convert_upload(
    data: bytes | bytearray, settings: PreprocessSettings
) -> tuple[Conversion | None, str | None]:
    """Bytes of one upload -> (its Conversion, None) or (None, a one-line reason). Never raises."""
    try:
        return convert_image(load_image_bytes(data, settings), settings), None
    except Exception as e:  # a bug or an exotic file must cost one result, not the request
        return None, conversion_error(e)


def preview_png(array: np.ndarray) -> str:
    """The 28x28 image the model saw, as base64 PNG (a few hundred bytes)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def classify_uploads(
    uploads: list[Upload], model: Model, options: ClassifyOptions, lock: threading.Lock
) -> list[dict]:
    """One result per upload, in order: the CSV row's fields plus `preview_png` (None for errors)."""
    settings = options.conversion(model.card.conversion())
    conversions, converted = [], []
    for upload in uploads:
        conversion, error = convert_upload(upload.data, settings)
        upload.data = bytearray()  # the photo is not needed any more: free it before the next one
        conversions.append(conversion)
        data = conversion.image.tobytes() if conversion is not None else None
        converted.append(Converted(data, error, conversion.segmented if conversion is not None else False))
    names = [upload.filename for upload in uploads]
    with lock:  # one interpreter, shared by all requests; it is not thread-safe
        rows = list(predicted_rows(model, names, converted, options.top_k, options.min_confidence))
    for row, conversion in zip(rows, conversions, strict=True):
        row["preview_png"] = preview_png(conversion.image) if conversion is not None else None
    return rows


def page_html() -> str:
    return resources.files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")


def create_app(options: ServeOptions | None = None, model: Model | None = None) -> FastAPI:
    """The ASGI app. The model is loaded once, when the app starts, unless one is given."""
    options = options or ServeOptions()
    lock = threading.Lock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = model or await run_in_threadpool(load_job_model, options.classify)
        yield

    # /docs and /redoc would load their scripts from a CDN; the schema stays at /openapi.json
    app = FastAPI(title="fmnist-batch", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page_html(), headers=PAGE_HEADERS)

    @app.get("/api/health")
    async def health(request: Request) -> dict:
        loaded: Model = request.app.state.model
        return {
            "status": "ok",
            "version": __version__,
            "backend": loaded.backend,
            "top_k": options.classify.top_k,
            "max_files": options.max_files,
            "max_upload_bytes": options.max_upload_bytes,
            "max_pixels": options.classify.max_pixels,
        }

    @app.get("/api/model")
    async def model_card(request: Request) -> dict:
        model = request.app.state.model
        runtime = {
            "backend": model.backend,
            "file": model.litert_file or "keras",
            "test_accuracy": model.test_accuracy,
        }
        return {**model.card.raw, "runtime": runtime}

    @app.post(
        "/api/classify",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                FIELD_NAME: {"type": "array", "items": {"type": "string", "format": "binary"}}
                            },
                            "required": [FIELD_NAME],
                        }
                    }
                },
            }
        },
    )
    async def classify(request: Request) -> dict:
        uploads = await read_uploads(request, options)
        if not uploads:
            raise _reject(400, f"no files: send them as multipart/form-data fields named {FIELD_NAME!r}")
        results = await run_in_threadpool(
            classify_uploads, uploads, request.app.state.model, options.classify, lock
        )
        return {"results": results}

    return app
