"""The server's settings and their defaults, in one place (`fmnist-batch serve --help` quotes them).

Kept free of FastAPI so the CLI can build its parser without the [serve] extra installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from fmnist_batch.options import ClassifyOptions

MEGABYTE = 1024 * 1024
#: serve refuses images over this many pixels, far fewer than classify's limit: a 0.5 MB PNG can decode to
#: hundreds of MB, and a server takes uploads from anyone, several at a time. 40 megapixels is more than
#: any phone camera and decodes to at most ~160 MB (4 bytes a pixel).
SERVE_MAX_PIXELS = 40_000_000


def _serve_classify_options() -> ClassifyOptions:
    return ClassifyOptions(max_pixels=SERVE_MAX_PIXELS)


@dataclass(frozen=True)
class ServeOptions:
    """What the server classifies with (model, top-k, conversion settings), its upload limits, and which
    requests it answers at all."""

    #: model, top-k and conversion settings; by default with max_pixels lowered to SERVE_MAX_PIXELS
    classify: ClassifyOptions = field(default_factory=_serve_classify_options)
    #: the largest request body accepted, in bytes (all files of one request together)
    max_upload_bytes: int = 20 * MEGABYTE
    #: the most files one request may hold
    max_files: int = 50
    #: photos decoded and converted at the same time, across all requests. Each can take up to about 16
    #: bytes a pixel while it is converted (a 40-megapixel PNG with alpha or 16-bit grey: 600-650 MB), so
    #: one at a time keeps the server under a gigabyte whatever it is sent.
    conversions: int = 1
    #: seconds a client may pause while sending a body before the request is dropped with 408
    body_timeout: float = 30.0
    #: the address the server listens on; decides which Host headers it answers (see security.py)
    host: str = "127.0.0.1"
    #: further host names the server answers to (e.g. a proxy's); for 0.0.0.0 this narrows "any name"
    allowed_hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1:
            raise ValueError("max_upload_bytes must be at least 1")
        if self.max_files < 1:
            raise ValueError("max_files must be at least 1")
        if self.conversions < 1:
            raise ValueError("conversions must be at least 1")
        if not self.body_timeout > 0:
            raise ValueError("body_timeout must be positive")
        # Host headers are compared in lower case and without IPv6 brackets
        names = tuple(name.strip().strip("[]").lower() for name in self.allowed_hosts)
        if not all(names):
            raise ValueError("allowed_hosts must not hold an empty name")
        object.__setattr__(self, "allowed_hosts", names)


def serve_default(name: str) -> Any:
    """The default of one ServeOptions field (the CLI's help quotes it)."""
    return next(f.default for f in fields(ServeOptions) if f.name == name)
