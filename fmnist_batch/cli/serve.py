"""`fmnist-batch serve`: the web app and its JSON API (the work is fmnist_batch.serve)."""

from __future__ import annotations

import argparse

from fmnist_batch.cli.arguments import (
    add_model_options,
    formatter,
    options_from,
    port,
    positive_float,
    positive_int,
)
from fmnist_batch.cli.env import Environment, ExitStatus, require
from fmnist_batch.serve.settings import MEGABYTE, SERVE_MAX_PIXELS, serve_default

DESCRIPTION = (
    "Serve a page where photos dropped or picked in a browser are classified (each with the 28x28 image "
    "the model saw and its top-k probabilities), and a JSON API, documented at /docs: POST /api/classify "
    "(multipart/form-data, files in fields named 'files' or 'file'; one result per file with the same "
    "fields as a CSV row plus preview_png), GET /api/health, GET /api/model (the model card). The model "
    "loads once, at start; uploads are decoded in memory and never written to disk, at most --conversions "
    "at a time. Errors are JSON: 400 no files, a malformed body or a Host header that is not this server's "
    "(DNS rebinding), 403 a POST from another site's page (its Origin header), 408 a body that stalls for "
    "--body-timeout, 413 an upload over --max-upload-mb or with more than --max-files files, 415 not "
    "multipart; a file that is not a usable image gets status 'error' in its result (200)."
)
EPILOG = (
    "examples:\n"
    "  fmnist-batch serve                                   # then open http://127.0.0.1:8000/\n"
    "  fmnist-batch serve --port 8080 --model runs/full --top-k 5\n"
    "  curl -F files=@shoe.jpg -F files=@bag.png http://127.0.0.1:8000/api/classify\n"
    "  fmnist-batch serve --host 0.0.0.0 --allowed-host photos.example.com   # behind a proxy\n\n"
    "The server has no authentication: keep the default --host 127.0.0.1 unless a proxy in front of it "
    "does that."
)


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a web page and JSON API to classify photos from a browser or over HTTP",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=formatter,
    )
    p.add_argument(
        "--host", default=serve_default("host"), help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=port, default=8000, help="port to listen on (default: %(default)s)")
    p.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (repeatable), e.g. a proxy's. Default: none; then "
        "on 127.0.0.1 only localhost, 127.0.0.1 and [::1] are answered (other names get 400: DNS "
        "rebinding), and on 0.0.0.0 any name; with --allowed-host on 0.0.0.0, only these names and the "
        "machine's addresses",
    )
    add_model_options(p, "--model")
    add_limit_options(p)
    add_model_options(p, "--top-k", "--min-confidence", "--background", "--precision", "--no-photo-model",
        "--no-garment-reader", "--other-threshold", "--no-other")  # fmt: skip
    p.set_defaults(run=run_serve)


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """What one request, and all requests together, may cost the server."""
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=serve_default("max_upload_bytes") / MEGABYTE,
        metavar="MB",
        help="largest request accepted, all its files together (default: %(default)g)",
    )
    p.add_argument(
        "--max-files",
        type=positive_int,
        default=serve_default("max_files"),
        help="most files per request (default: %(default)s)",
    )
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        default=SERVE_MAX_PIXELS,
        help="refuse larger images; lower than classify's, since a small upload can decode to hundreds of "
        "MB (default: %(default)s)",
    )
    p.add_argument(
        "--conversions",
        type=positive_int,
        default=serve_default("conversions"),
        metavar="N",
        help="photos decoded at the same time, across all requests; bounds the memory (default: %(default)s)",
    )
    p.add_argument(
        "--body-timeout",
        type=positive_float,
        default=serve_default("body_timeout"),
        metavar="SECONDS",
        help="drop a request whose body stops arriving for this long, with 408 (default: %(default)g)",
    )


def run_serve(args: argparse.Namespace, env: Environment) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, "serve")
    import uvicorn

    from fmnist_batch.model.runtime import load_job_model
    from fmnist_batch.serve.app import ServeOptions, create_app

    options = ServeOptions(
        classify=options_from(args),
        max_upload_bytes=int(args.max_upload_mb * MEGABYTE),
        max_files=args.max_files,
        conversions=args.conversions,
        body_timeout=args.body_timeout,
        host=args.host,
        allowed_hosts=tuple(args.allowed_hosts),
    )
    # Loaded here, once, so a broken model is a clean usage error (exit 2) before the port is opened.
    model = load_job_model(options.classify)
    server = uvicorn.Server(uvicorn.Config(create_app(options, model), host=args.host, port=args.port))
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C / SIGTERM it shut down on
        pass
    except SystemExit:  # uvicorn exits when it cannot listen; it has logged why
        env.error(f"cannot serve on {args.host}:{args.port}")
        return ExitStatus.USAGE
    return ExitStatus.OK
