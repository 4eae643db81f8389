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


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a web page and JSON API to classify photos from a browser or over HTTP",
        description="Serve a page where photos dropped or picked in a browser are classified (each with the "
        "28x28 image the model saw and its top-k probabilities), and a JSON API: POST /api/classify "
        "(multipart/form-data, files in fields named 'files'; one result per file with the same fields as a "
        "CSV row plus preview_png), GET /api/health, GET /api/model (the model card). The model loads once, "
        "at start; uploads are decoded in memory and never written to disk. Errors are JSON: 400 no files "
        "or a malformed body, 413 an upload over --max-upload-mb or with more than --max-files files, 415 "
        "not multipart; a file that is not a usable image gets status 'error' in its result (200).",
        epilog="examples:\n"
        "  fmnist-batch serve                                   # then open http://127.0.0.1:8000/\n"
        "  fmnist-batch serve --port 8080 --model runs/full --top-k 5\n"
        "  curl -F files=@shoe.jpg -F files=@bag.png http://127.0.0.1:8000/api/classify\n\n"
        "The server has no authentication: keep the default --host 127.0.0.1 unless a proxy in front of it "
        "does that.",
        formatter_class=formatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=port, default=8000, help="port to listen on (default: %(default)s)")
    add_model_options(p, "--model")
    p.add_argument(
        "--max-upload-mb",
        type=positive_float,
        default=20.0,
        metavar="MB",
        help="largest request accepted, all its files together (default: %(default)g)",
    )
    p.add_argument(
        "--max-files", type=positive_int, default=50, help="most files per request (default: %(default)s)"
    )
    add_model_options(
        p, "--top-k", "--min-confidence", "--background", "--max-pixels", "--precision", "--no-photo-model"
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace, env: Environment) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, "serve")
    import uvicorn

    from fmnist_batch.job import load_job_model
    from fmnist_batch.serve.app import MEGABYTE, ServeOptions, create_app

    options = ServeOptions(
        classify=options_from(args),
        max_upload_bytes=int(args.max_upload_mb * MEGABYTE),
        max_files=args.max_files,
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
