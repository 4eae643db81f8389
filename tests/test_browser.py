"""End to end in a real browser: the web app's page, and an HTML report opened from disk.

Headless Chromium from Debian (/usr/bin/chromium), driven by Playwright from pip; `playwright install`
(which downloads a browser) is never needed.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from browser import CHROMIUM, chromium_available, launch_chromium
from conftest import render_photos
from photos import load_fmnist_test_sample, render_catalog_photo

from fmnist_batch.cli import Environment, main
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.outputs.writer import read_rows

# Classes the model tells apart with near certainty, so "the right label" does not hinge on a hard photo.
DISTINCT_CLASSES = ("Trouser", "Ankle boot")

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not chromium_available():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    yield page
    context.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """The real app under uvicorn, on a free loopback port, in a thread."""
    pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
    import uvicorn

    from fmnist_batch.serve.app import ServeOptions, create_app

    port = free_port()
    config = uvicorn.Config(
        create_app(ServeOptions(max_files=8)), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


def distinct_photo(folder) -> tuple[str, str]:
    """A rendered catalog photo of a clearly recognisable class: (path, true label)."""
    sample = load_fmnist_test_sample(60, seed=11)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    for image, label in zip(*sample, strict=True):
        if CLASS_NAMES[label] in DISTINCT_CLASSES:
            path = folder / "catalog photo.jpg"
            render_catalog_photo(image, size=480, offset=(0.06, 0.04), seed=1).save(path, quality=90)
            return str(path), CLASS_NAMES[label]
    raise AssertionError("no photo of a distinct class in the sample")


def test_the_page_classifies_a_dropped_photo(page, server_url, tmp_path):
    path, truth = distinct_photo(tmp_path)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    page.goto(server_url)
    page.wait_for_selector("#limits:has-text('Up to 8 photos')")  # the page asked the server its limits
    page.set_input_files("#files", [path, str(junk)])
    page.wait_for_selector("#results .card:not(.pending) >> nth=1")
    good, bad = page.locator("#results .card").all()
    assert good.locator(".label").inner_text() == truth
    assert good.locator(".filename").inner_text() == "catalog photo.jpg"
    assert good.locator("img.seen").get_attribute("src").startswith("data:image/png;base64,")
    assert good.locator(".bars li").count() == 3
    assert good.locator(".bars li").first.inner_text().startswith(truth)
    assert bad.locator(".message").inner_text().startswith("could not read this file: not an image file")
    assert "the server does not answer" not in page.inner_text("#model")


def test_a_photo_of_a_person_says_how_and_where_it_was_read(page, server_url, tmp_path):
    data = pytest.importorskip("skimage.data")
    from PIL import Image

    canvas = Image.new("RGB", (600, 700), "white")  # a studio shot: white all round
    canvas.paste(Image.fromarray(data.astronaut()), (44, 94))
    canvas.save(tmp_path / "on-model.jpg", quality=92)
    path, _ = distinct_photo(tmp_path)
    page.goto(server_url)
    page.set_input_files("#files", [str(tmp_path / "on-model.jpg"), path])
    page.wait_for_selector("#results .card:not(.pending) >> nth=1")
    worn, catalog = page.locator("#results .card").all()
    assert worn.locator(".badge.view").inner_text() == "worn · full"  # the garment below her chin
    assert catalog.locator(".badge.view").count() == 0  # a product shot needs no note


LOAD_ICON = """async () => {
    const link = document.querySelector("link[rel~=icon]");
    const icon = new Image();
    icon.src = link.href;
    await icon.decode();
    return [new URL(link.href).pathname, icon.naturalWidth];
}"""


def console_problems(page) -> list[str]:
    """Console errors and uncaught exceptions of a page, as they happen (a 404 for the icon is one)."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def test_a_file_that_is_not_an_image_says_why_instead_of_showing_a_black_square(page, server_url, tmp_path):
    problems = console_problems(page)
    junk = tmp_path / "notes.jpg"
    junk.write_text("not a photo")
    page.goto(server_url)
    # headless Chromium fetches no tab icon, so the page's icon is loaded as an image here
    assert page.evaluate(LOAD_ICON) == ["/favicon.ico", 32]
    page.wait_for_selector("#limits:has-text('Up to 8 photos')")
    page.set_input_files("#files", [str(junk)])
    card = page.locator("#results .card.error")
    card.wait_for()
    message = card.locator(".message").inner_text()
    assert message.startswith("could not read this file: not an image file"), message
    assert card.locator(".seen").count() == 0, "the model saw nothing: no 'what the model saw' square"
    card.locator(".photo.blank").wait_for()  # the browser could not show the file either, and says so
    broken = "images => images.filter(img => !(img.complete && img.naturalWidth > 0)).length"
    assert page.locator("img").evaluate_all(broken) == 0
    assert problems == []


def test_a_report_opens_from_disk_and_shows_every_file(page, tmp_path):
    photos = render_photos(tmp_path / "photos", 6, seed=4)
    broken = tmp_path / "photos" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out, report = tmp_path / "out.csv", tmp_path / "report.html"
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    args = ["classify", str(tmp_path / "photos"), "-o", str(out), "--report", str(report), "--workers", "1"]
    assert main(args, env) == 1, env.stderr.getvalue()
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(report.as_uri())
    rows = list(read_rows(str(out)))
    assert len(rows) == len(photos) + 1
    titles = [f.get_attribute("title") for f in page.locator("figure.photo").all()]
    shown = {title.split("\n")[0] for title in titles}
    assert shown == {row["path"] for row in rows if row["status"] != "error"}
    for row in rows:
        if row["status"] != "error":
            figure = page.locator(f'details[id="class-{slug(row["label"])}"] figure[title^="{row["path"]}"]')
            assert figure.count() == 1, row["path"]
    errors = page.inner_text("#errors")
    assert "broken.png" in errors
    assert page.locator("figure.photo img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    assert all(url.startswith(("file:", "data:")) for url in requested), requested


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower())


def test_the_header_gives_the_real_photo_accuracy_beside_the_dataset_figure(page, server_url):
    import json
    from pathlib import Path

    sets = json.loads((Path(__file__).resolve().parent.parent / "docs" / "real_photos.json").read_text())
    amateur = next(s for s in sets["sets"] if s["key"] == "amateur")["accuracy"]
    page.goto(server_url)
    page.wait_for_selector("#model:has-text('test accuracy')")
    header = page.inner_text("#model")
    assert "on Fashion-MNIST" in header
    assert f"{100 * amateur:.1f}% on amateur photos" in header
