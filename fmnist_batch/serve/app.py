"""The web app behind `fmnist-batch serve`: a page to drop photos on, and a JSON API.

    GET  /              the page (one HTML file with its CSS and JS; no build step, nothing from a CDN)
    GET  /docs          the API's documentation (static HTML made from /openapi.json)
    POST /api/classify  multipart/form-data, one or many parts named `files` (or `file`); one result each
    GET  /api/health    {"status": "ok", ...} and the server's limits
    GET  /api/model     the model card, plus "runtime": the backend, the file it runs and that file's
                        test accuracy

| module | holds |
| --- | --- |
| settings.py | ServeOptions and the server's defaults |
| uploads.py | multipart bodies read into memory, with size, count and time limits |
| conversions.py | uploads -> rows, with the memory bounded (conversion slots, pixel limit, malloc_trim) |
| security.py | the Host and Origin checks every request passes first |
| docs.py, pages.py | the API's documentation; the page, its icon, the card as published |

Each file goes through the same decoding and conversion as `classify` and gets the same fields as a CSV
row, plus the 28x28 image the model saw as a base64 PNG.

Status codes: 200 with one result per file, in upload order (a file that is not a usable image has
status "error" and says why, like a CSV row); 400 no files, a malformed multipart body, or a Host header
that is not this server; 403 a POST from another site's page; 408 the body stalled; 413 the body is
larger than max_upload_bytes, or it holds more than max_files files; 415 not multipart/form-data.
Every error is JSON: {"detail": "..."}.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from fmnist_batch import __version__
from fmnist_batch.model.runtime import Model, load_job_model
from fmnist_batch.serve.conversions import classify_uploads
from fmnist_batch.serve.docs import (
    API_DESCRIPTION,
    classify_openapi,
    docs_html,
    health_openapi,
    model_openapi,
)
from fmnist_batch.serve.pages import PAGE_HEADERS, favicon_png, page_html, public_card, real_photo_figures
from fmnist_batch.serve.security import RequestGuard
from fmnist_batch.serve.settings import MEGABYTE, SERVE_MAX_PIXELS, ServeOptions
from fmnist_batch.serve.uploads import FIELD_NAMES, read_uploads, reject

__all__ = ["MEGABYTE", "SERVE_MAX_PIXELS", "ServeOptions", "create_app"]


def create_app(options: ServeOptions | None = None, model: Model | None = None) -> FastAPI:
    """The ASGI app. The model is loaded once, when the app starts, unless one is given."""
    options = options or ServeOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.model = model or await run_in_threadpool(load_job_model, options.classify)
        # made here, inside the server's event loop, which they belong to
        app.state.conversion_slots = asyncio.Semaphore(options.conversions)
        yield

    # FastAPI's /docs and /redoc load their scripts from a CDN; ours is static HTML (docs.py)
    app = FastAPI(
        title="fmnist-batch",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(RequestGuard, bound_host=options.host, allowed_hosts=options.allowed_hosts)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    _add_pages(app)
    _add_api(app, options)
    return app


def _add_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page_html(), headers=PAGE_HEADERS)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        server = str(request.base_url).rstrip("/")
        return HTMLResponse(docs_html(app.openapi(), server), headers=PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(favicon_png(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})


def limits(options: ServeOptions) -> dict[str, int]:
    """What a client must keep to, as /api/health tells the page."""
    return {
        "top_k": options.classify.top_k,
        "max_files": options.max_files,
        "max_upload_bytes": options.max_upload_bytes,
        "max_pixels": options.classify.max_pixels,
    }


def _add_api(app: FastAPI, options: ServeOptions) -> None:
    lock = threading.Lock()  # one interpreter, shared by all requests; it is not thread-safe

    @app.get("/api/health", summary="Status and limits", openapi_extra=health_openapi(limits(options)))
    async def health(request: Request) -> dict:
        """The server is up; its model's backend and the limits a client must keep to."""
        backend = request.app.state.model.backend
        return {"status": "ok", "version": __version__, "backend": backend, **limits(options)}

    @app.get("/api/model", summary="The model card", openapi_extra=model_openapi())
    async def model_card(request: Request) -> dict:
        """The card of the model the server runs (its classes, training, metrics), plus "runtime": the
        backend, the file it runs and that file's test accuracy, and "real_photos": its accuracy on sets
        of real photos, when they were measured. Absolute paths are cut to their last part."""
        model = request.app.state.model
        runtime = {
            "backend": model.backend,
            "file": model.litert_file or "keras",
            "test_accuracy": model.test_accuracy,
        }
        real_photos = real_photo_figures(model.card.path)
        return {**public_card(model.card.raw), "runtime": runtime, "real_photos": real_photos}

    @app.post(
        "/api/classify", summary="Classify photos", openapi_extra=classify_openapi(options.classify.top_k)
    )
    async def classify(request: Request) -> dict:
        """Photos in, one result per file out, in upload order, with the fields of a `classify` CSV row.
        A file that is not a usable image is a result with status "error" and a reason, not a failed
        request."""
        uploads = await read_uploads(request, options)
        if not uploads:
            raise reject(400, f"no files: send them as multipart/form-data fields named {FIELD_NAMES[0]!r}")
        state = request.app.state
        results = await classify_uploads(uploads, state.model, options.classify, state.conversion_slots, lock)
        return {"results": results}
