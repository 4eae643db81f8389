"""Uploads -> results: the same decoding, conversion and rows as `classify`, with the server's memory
bounded.

A small PNG can decode to hundreds of MB (a 12,000 x 12,000 image of one colour compresses to 0.5 MB), so
the server converts at most `ServeOptions.conversions` photos at a time, whatever the number of
requests, refuses images over its own, lower, pixel limit, and hands freed heap pages back to the system
after each photo (glibc otherwise keeps much of a large image's memory, and a server lives for months).
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import functools
import io
import sys
import threading
from collections.abc import Callable

import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.convert.source import Converted, convert_source
from fmnist_batch.engines.predict import predicted_rows
from fmnist_batch.labels import IMAGE_SIZE
from fmnist_batch.model.runtime import Model
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.serve.uploads import Upload


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only; musl has no malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the free pages of every malloc arena to the system. A no-op outside glibc."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def convert_upload(data: bytes | bytearray, settings: ConversionSettings) -> Converted:
    """Bytes of one upload -> its Converted (convert_source: the same route and errors as a file's).
    Never raises."""
    try:
        return convert_source(data, settings)
    finally:
        # Every photo, not only large ones: the decoded size is not known here (the decoder reduces large
        # images as it reads them), and trimming takes about a millisecond.
        release_freed_memory()


def preview_png(data: bytes) -> str:
    """The 28x28 image the model saw (Converted.data), as base64 PNG (a few hundred bytes)."""
    buffer = io.BytesIO()
    array = np.frombuffer(data, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


async def convert_uploads(
    uploads: list[Upload], settings: ConversionSettings, slots: asyncio.Semaphore
) -> list[Converted]:
    """Each upload converted in a worker thread once a conversion slot is free (the waiting is done on the
    event loop, so queued requests hold no thread); each photo's bytes are freed once it is converted."""
    conversions = []
    for upload in uploads:
        async with slots:
            conversions.append(await run_in_threadpool(convert_upload, upload.data, settings))
        upload.data = bytearray()
    return conversions


def predict_uploads(
    names: list[str],
    converted: list[Converted],
    model: Model,
    options: ClassifyOptions,
    lock: threading.Lock,
) -> list[dict]:
    """One result per upload, in order: the CSV row's fields plus `preview_png` (None for errors)."""
    with lock:  # one interpreter, shared by all requests; it is not thread-safe
        rows = list(predicted_rows(model, options, names, converted))
    for row, conversion in zip(rows, converted, strict=True):
        row["preview_png"] = preview_png(conversion.data) if conversion.data is not None else None
    return rows


async def classify_uploads(
    uploads: list[Upload],
    model: Model,
    options: ClassifyOptions,
    slots: asyncio.Semaphore,
    lock: threading.Lock,
) -> list[dict]:
    """The results of one request's uploads: converted within the server's slots, then predicted."""
    settings = model.conversion_settings(options)
    conversions = await convert_uploads(uploads, settings, slots)
    names = [upload.filename for upload in uploads]
    return await run_in_threadpool(predict_uploads, names, conversions, model, options, lock)
