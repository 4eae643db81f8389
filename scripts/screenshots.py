"""Screenshots for the README: the web app after classifying sample photos, and an HTML report.

    python scripts/screenshots.py                  # docs/figures/web_app.png and docs/figures/report.png
    python scripts/screenshots.py --model runs/x   # with another model

Starts `fmnist-batch serve` on a free loopback port itself and stops it at the end; runs
`fmnist-batch classify --report` on the samples into a temporary folder. Needs the [serve] extra,
Playwright (pip) and Debian's Chromium at /usr/bin/chromium; no browser download.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from browser import launch_chromium
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
# Resolves once the images in view are decoded (lazy ones below the fold never load, so they are left out).
VISIBLE_IMAGES_DECODED = """() => Promise.all([...document.images]
    .filter(img => img.getBoundingClientRect().top < window.innerHeight)
    .map(img => img.decode().catch(() => null)))"""
# Classes shown on the web app screenshot, one sample photo each (two rows of four cards).
WEB_APP_CLASSES = ["sneaker", "dress", "bag", "shirt", "trouser", "ankle-boot", "pullover", "sandal"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fmnist_batch(*args: str) -> list[str]:
    return [sys.executable, "-m", "fmnist_batch", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def start_server(port: int, model: str | None) -> subprocess.Popen:
    command = fmnist_batch("serve", "--port", str(port), *(["--model", model] if model else []))
    server = subprocess.Popen(
        command, env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2):
                return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit("fmnist-batch serve did not start") from None
            time.sleep(0.2)


def web_app_screenshot(browser, url: str, photos: list[Path], target: Path) -> None:
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    page.goto(url)
    page.wait_for_selector("#model:not(:has-text('loading'))")
    page.set_input_files("#files", [str(p) for p in photos])
    page.wait_for_selector(f"#results .card:not(.pending) >> nth={len(photos) - 1}")
    page.evaluate(VISIBLE_IMAGES_DECODED)
    page.screenshot(path=str(target), full_page=True)
    page.close()


def report_photos(folder: Path, samples: Path) -> Path:
    """A folder like a real run's: rendered catalog photos (scripts/make_samples.py, when the dataset is
    installed; else a copy of the samples) and two files that cannot be read."""
    photos = folder / "photos"
    made = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_samples.py"), "--out", str(photos), "--per-class", "6"],
        env=environment(),
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        shutil.copytree(samples, photos, dirs_exist_ok=True)
    (photos / "shirt" / "scan-0412.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    (photos / "bag" / "notes.png").write_text("not a photo")
    return photos


def report_screenshot(browser, samples: Path, model: str | None, target: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        photos = report_photos(Path(folder), samples)
        report = Path(folder, "report.html")
        command = fmnist_batch("classify", photos.name, "-o", "out.csv", "--report", report.name, "--quiet")
        options = ["--min-confidence", "0.9", *(["--model", str(Path(model).resolve())] if model else [])]
        subprocess.run([*command, *options], env=environment(), cwd=folder, check=False)
        page = browser.new_page(viewport={"width": 1360, "height": 1400})
        page.goto(report.as_uri())
        page.evaluate(VISIBLE_IMAGES_DECODED)
        page.screenshot(path=str(target))
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, default=REPO / "samples", help="folder of sample photos")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "figures", help="folder for the PNGs")
    parser.add_argument("--model", help="model folder or file (default: bundled)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    photos = [sorted((args.samples / name).iterdir())[0] for name in WEB_APP_CLASSES]

    port = free_port()
    server = start_server(port, args.model)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            web_app_screenshot(browser, f"http://127.0.0.1:{port}/", photos, args.out / "web_app.png")
            report_screenshot(browser, args.samples, args.model, args.out / "report.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name in ("web_app.png", "report.png"):
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
