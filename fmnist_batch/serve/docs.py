"""The API's documentation: what the OpenAPI schema says about each endpoint, and /docs, a static page
made from that schema.

FastAPI's own /docs and /redoc load Swagger UI or ReDoc from a CDN, which the page's Content-Security-
Policy forbids and machines without internet cannot reach; this page is plain HTML, with no script.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fmnist_batch import __version__
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.serve.uploads import FIELD_NAMES

SERVER = "{server}"  # in code samples: replaced by the server's own address on the page
API_DESCRIPTION = """Classify product photos into the 10 Fashion-MNIST classes.

Every error is JSON: {"detail": "..."}. Every request whose Host header is not the server's own address
gets 400 (protection from DNS rebinding), and a POST whose Origin header names another site gets 403
(protection from cross-site posts); curl and the server's own page send neither.

The machine-readable schema is at /openapi.json."""

_ROW_FIELDS = {
    "path": ("string", "the uploaded file's name"),
    "label": (
        ["string", "null"],
        "the most likely class, or other when the photo shows none of the 10 classes; null for a file that "
        "was not classified",
    ),
    "confidence": (["number", "null"], "its probability, 0 to 1 (for other: 1 - in_scope)"),
    "in_scope": (
        ["number", "null"],
        "the scope judge's calibrated probability that the photo shows one of the 10 classes; for a catalog "
        "shot that reads as a Fashion-MNIST image, not judged, how near its 28x28 image is to the training "
        "images, from the operating point to 1 (absent with --no-other; null for an image already in the "
        "dataset's 28x28 grey format, which is in scope, and for errors)",
    ),
    "view": (
        ["string", "null"],
        "what the image was made from: catalog (a product shot as is), segmented (cut out of its "
        "surroundings), worn (the garment a person wears); null for errors",
    ),
    "region": (
        ["string", "null"],
        "for a worn garment, the part of the person it was read from: upper (the top, a second garment "
        "below it left out) or full (everything worn below the chin); null for other views",
    ),
    "status": (
        "string",
        "ok; uncertain (below the server's --min-confidence, or a blank photo); other (none of the 10 "
        "classes); error (not classified)",
    ),
    "error": ("string", "why the file was not classified (empty otherwise): not an image, too large, ..."),
    "preview_png": (["string", "null"], "the 28x28 image the model saw, base64 PNG; null for errors"),
}


def _field(name: str) -> dict[str, Any]:
    if name.startswith("top"):
        rank, _, what = name[3:].partition("_")
        ordinal = {"1": "1st", "2": "2nd", "3": "3rd"}.get(rank, f"{rank}th")
        kind = ["string", "null"] if what == "label" else ["number", "null"]
        text = f"the {ordinal} most likely class" + ("" if what == "label" else "'s probability")
    else:
        kind, text = _ROW_FIELDS[name]
    return {"type": kind, "description": text}


def classify_openapi(top_k: int) -> dict[str, Any]:
    """The request body, responses and a code sample of POST /api/classify, for a server's top-k."""
    binary = {"type": "string", "format": "binary"}
    fields = {name: _field(name) for name in [*row_fields(top_k, in_scope=True), "preview_png"]}
    example = {name: None for name in fields} | {
        "path": "shoe.jpg", "label": "Sneaker", "confidence": 0.97, "top1_label": "Sneaker",
        "top1_prob": 0.97, "view": "catalog", "status": "ok", "error": "", "preview_png": "iVBORw0KGgo...",
    }  # fmt: skip
    ok = {"type": "object", "properties": {"results": {"type": "array", "items": {"properties": fields}}}}
    files = {"type": "array", "items": binary, "description": "the photos, one part each"}
    form = {FIELD_NAMES[0]: files, FIELD_NAMES[1]: {**binary, "description": "one photo (curl -F file=@x)"}}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": {"properties": form}}},
        },
        "responses": {
            "200": {
                "description": "one result per file, in upload order",
                "content": {"application/json": {"schema": ok, "example": {"results": [example]}}},
            },
            "400": {"description": "no files, a malformed body, or a Host that is not this server"},
            "403": {"description": "the request came from a page on another site (its Origin header)"},
            "408": {"description": "the client stopped sending the body (--body-timeout)"},
            "413": {"description": "the body is over --max-upload-mb, or holds more than --max-files files"},
            "415": {"description": "the body is not multipart/form-data"},
        },
        "x-codeSamples": [
            {"lang": "shell", "source": f"curl -F files=@shoe.jpg -F files=@bag.png {SERVER}/api/classify"},
            {"lang": "shell", "source": f"curl -F file=@shoe.jpg {SERVER}/api/classify"},
        ],
    }


def _get_openapi(path: str, fields: dict[str, tuple[str, str]], example: dict[str, Any]) -> dict[str, Any]:
    """The answer's fields, an example and a code sample of a GET endpoint."""
    properties = {name: {"type": kind, "description": text} for name, (kind, text) in fields.items()}
    answer = {"schema": {"type": "object", "properties": properties}, "example": example}
    return {
        "responses": {"200": {"description": "the answer", "content": {"application/json": answer}}},
        "x-codeSamples": [{"lang": "shell", "source": f"curl {SERVER}{path}"}],
    }


def health_openapi(limits: dict[str, Any]) -> dict[str, Any]:
    """GET /api/health's documentation, with the server's own limits as the example."""
    fields = {
        "status": ("string", "ok"),
        "version": ("string", "fmnist-batch's version"),
        "backend": ("string", "what runs the model: litert or keras"),
        "top_k": ("integer", "labels and probabilities in each result"),
        "max_files": ("integer", "most files in one request"),
        "max_upload_bytes": ("integer", "largest request body, all its files together"),
        "max_pixels": ("integer", "largest image, in pixels; a larger one is a result with status error"),
    }
    example = {"status": "ok", "version": __version__, "backend": "litert", **limits}
    return _get_openapi("/api/health", fields, example)


def model_openapi() -> dict[str, Any]:
    """GET /api/model's documentation (the card holds more than shown: training, versions, dataset...)."""
    fields = {
        "class_names": ("array", "the 10 classes, in the order of the model's outputs"),
        "metrics": ("object", "accuracies of the saved model and its exported files on the test set"),
        "preprocessing": ("object", "the conversion the model was trained for"),
        "runtime": ("object", "backend, file (tflite_int8, tflite or keras) and that file's test_accuracy"),
    }
    example = {
        "class_names": list(CLASS_NAMES),
        "metrics": {"test_accuracy": 0.9448, "int8_test_accuracy": 0.9415},
        "runtime": {"backend": "litert", "file": "tflite_int8", "test_accuracy": 0.9415},
    }
    return _get_openapi("/api/model", fields, example)


def _kind(field: dict[str, Any]) -> str:
    kind = field.get("type", "")
    if field.get("format") == "binary":
        return "file"
    return " | ".join(kind) if isinstance(kind, list) else kind


def _fields_table(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Table rows for an object schema's properties, nested arrays of objects included."""
    rows = []
    for name, field in schema.get("properties", {}).items():
        items = field.get("items", {})
        if "properties" in items:
            rows += _fields_table(items, f"{prefix}{name}[].")
            continue
        kind = _kind(field)
        if items:
            kind = f"array of {_kind(items)}s"
        rows.append(
            f"<tr><td><code>{escape(prefix + name)}</code></td><td>{escape(kind)}</td>"
            f"<td>{escape(field.get('description', ''))}</td></tr>"
        )
    return rows


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{escape(block)}</p>" for block in text.split("\n\n") if block.strip())


def _operation_html(method: str, path: str, operation: dict[str, Any], server: str) -> str:
    parts = [f'<section id="{escape(method + path)}"><h2><code>{method.upper()} {escape(path)}</code> ']
    parts.append(
        f"{escape(operation.get('summary', ''))}</h2>{_paragraphs(operation.get('description', ''))}"
    )
    for content_type, body in operation.get("requestBody", {}).get("content", {}).items():
        parts.append(f"<h3>Request: <code>{escape(content_type)}</code></h3>")
        parts.append("<table><tr><th>field</th><th>type</th><th>meaning</th></tr>")
        parts += [*_fields_table(body.get("schema", {})), "</table>"]
    parts.append("<h3>Responses</h3><table><tr><th>status</th><th>meaning</th></tr>")
    responses = operation.get("responses", {})
    for status, response in responses.items():
        parts.append(f"<tr><td>{escape(status)}</td><td>{escape(response.get('description', ''))}</td></tr>")
    parts.append("</table>")
    answer = responses.get("200", {}).get("content", {}).get("application/json", {})
    fields = _fields_table(answer.get("schema", {}))
    if fields:
        parts += ["<h3>Fields of the answer</h3><table>", *fields, "</table>"]
    samples = "\n".join(
        sample["source"].replace(SERVER, server) for sample in operation.get("x-codeSamples", [])
    )
    if samples:
        parts.append(f"<h3>Example</h3><pre>{escape(samples)}</pre>")
    if "example" in answer:
        parts.append(f"<h3>Answer</h3><pre>{escape(json.dumps(answer['example'], indent=2))}</pre>")
    return "".join(parts) + "</section>"


_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1d2330; max-width: 980px; margin: 0 auto;
       padding: 1rem 2rem; }
code, pre { font-family: ui-monospace, monospace; }
pre { background: #f6f7f9; padding: .8rem; overflow-x: auto; border-radius: 6px; }
table { border-collapse: collapse; margin: .4rem 0; }
td, th { border: 1px solid #e3e6ec; padding: .25rem .6rem; text-align: left; vertical-align: top; }
section { border-top: 1px solid #e3e6ec; margin-top: 1.5rem; }
h2 { font-size: 1.15rem; } h3 { font-size: 1rem; margin-bottom: .2rem; }
"""


def docs_html(schema: dict[str, Any], server: str) -> str:
    """A self-contained HTML page documenting every endpoint of an OpenAPI schema; `server` is the base
    URL the code samples use (the address the reader reached the server at)."""
    info = schema.get("info", {})
    title = f"{info.get('title', 'API')} {info.get('version', '')}"
    operations = [
        (method, path, operation)
        for path, methods in schema.get("paths", {}).items()
        for method, operation in methods.items()
    ]
    toc = "".join(
        f'<li><a href="#{escape(m + p)}"><code>{m.upper()} {escape(p)}</code></a> '
        f"{escape(o.get('summary', ''))}</li>"
        for m, p, o in operations
    )
    body = "".join(_operation_html(m, p, o, server) for m, p, o in operations)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)} · API</title>'
        f'<link rel="icon" href="favicon.ico"><style>{_STYLE}</style></head><body>'
        f"<h1>{escape(title)} · JSON API</h1>{_paragraphs(info.get('description', ''))}"
        f'<p><a href="./">the web app</a> · <a href="openapi.json">openapi.json</a></p><ul>{toc}</ul>{body}'
        "</body></html>"
    )
