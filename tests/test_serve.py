from __future__ import annotations

import base64
import importlib.util
import io
import re

import numpy as np
import pytest
from conftest import make_bad_files, render_photos
from photos import load_fmnist_test_sample, png_claiming_size, render_catalog_photo
from PIL import Image

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("python_multipart", reason="the [serve] extra is not installed")
from fastapi.testclient import TestClient

from fmnist_batch import cli
from fmnist_batch.api import classify
from fmnist_batch.convert import convert_path
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.options import default
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.serve.app import MEGABYTE, SERVE_MAX_PIXELS, ServeOptions, create_app
from fmnist_batch.serve.pages import public_card

MAX_FILES = 4
BASE_URL = "http://127.0.0.1:8000"
FIELDS = [*row_fields(3, in_scope=True), "preview_png"]


@pytest.fixture(scope="module")
def client():
    app = create_app(ServeOptions(max_upload_bytes=MEGABYTE, max_files=MAX_FILES))
    # the address the server listens on by default, so the Host checks pass as they do for a browser
    with TestClient(app, base_url=BASE_URL) as test_client:  # runs the lifespan: the model loads once, here
        yield test_client


def encode(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def catalog_photos(tmp_path_factory) -> list[tuple[str, bytes]]:
    """(file name, bytes) of five rendered catalog photos, in several formats."""
    sample = load_fmnist_test_sample(5, seed=3)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    photos = []
    for i, (image, fmt) in enumerate(zip(sample[0], ["JPEG", "PNG", "WEBP", "JPEG", "PNG"], strict=True)):
        img = render_catalog_photo(image, size=320 + 40 * i, offset=(0.05, -0.03), seed=i)
        photos.append((f"photo-{i}.{fmt.lower()}", encode(img, fmt)))
    return photos


def post(client: TestClient, files: list[tuple[str, bytes]]):
    return client.post("/api/classify", files=[("files", (name, data)) for name, data in files])


def test_several_photos_at_once_get_the_same_rows_as_classify(client, catalog_photos, tmp_path):
    response = post(client, catalog_photos[:MAX_FILES])
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["path"] for r in results] == [name for name, _ in catalog_photos[:MAX_FILES]]
    for name, data in catalog_photos[:MAX_FILES]:
        (tmp_path / name).write_bytes(data)
    expected = list(classify([str(tmp_path / name) for name, _ in catalog_photos[:MAX_FILES]], workers=1))
    for result, row in zip(results, expected, strict=True):
        assert list(result) == FIELDS
        assert result["status"] == row["status"] != "error" and result["error"] == ""
        assert result["label"] == row["label"] and result["top3_label"] == row["top3_label"]
        assert result["confidence"] == pytest.approx(row["confidence"], abs=1e-5)
        preview = Image.open(io.BytesIO(base64.b64decode(result["preview_png"])))
        assert preview.format == "PNG" and preview.size == (28, 28)
        assert np.array_equal(np.asarray(preview), convert_path(tmp_path / result["path"]).image)


def test_catalog_photos_are_classified_right(client, tmp_path):
    photos = render_photos(tmp_path, MAX_FILES, seed=7)
    response = post(client, [(path.name, path.read_bytes()) for path, _ in photos[:MAX_FILES]])
    labels = [r["label"] for r in response.json()["results"]]
    assert {r["view"] for r in response.json()["results"]} == {"catalog"}  # product shots, read as they are
    assert {r["region"] for r in response.json()["results"]} == {None}  # no person, no part of one
    truth = [label for _, label in photos[:MAX_FILES]]
    assert labels == truth  # catalog shots: every one right, as classify gets them


def test_bad_files_get_an_error_result_and_good_ones_still_classify(client, catalog_photos, tmp_path):
    bad = make_bad_files(tmp_path / "bad")
    files = [(p.name, p.read_bytes()) for key, p in bad.items() if key in ("empty", "truncated", "text")]
    files.append(catalog_photos[0])
    response = post(client, files)
    assert response.status_code == 200
    results = {r["path"]: r for r in response.json()["results"]}
    assert results["empty.jpg"]["error"] == "empty file"
    assert results["notes.jpg"]["error"].startswith("not an image file")
    assert results["truncated.jpg"]["error"]
    for name in ("empty.jpg", "notes.jpg", "truncated.jpg"):
        assert results[name]["status"] == "error" and results[name]["label"] is None
        assert results[name]["preview_png"] is None
    assert results[catalog_photos[0][0]]["status"] != "error"


def test_too_many_pixels_is_refused_from_the_header(client):
    response = post(client, [("bomb.png", png_claiming_size(50_000, 50_000))])
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["status"] == "error" and result["error"].startswith("image too large")


def test_a_single_file_that_is_not_an_image_is_a_result_with_status_error(client):
    response = post(client, [("notes.txt", b"not a photo\n")])
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "error"


def test_an_oversized_upload_is_refused_with_413(client):
    noise = np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    big = encode(Image.fromarray(noise), "PNG")
    assert len(big) > MEGABYTE
    response = post(client, [("big.png", big)])
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_the_size_limit_holds_without_content_length(client):
    # chunked transfer: the server must count the bytes it reads, not trust a header
    boundary = "b0undary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="x.jpg"\r\n\r\n'.encode()

    def body():
        yield head
        for _ in range(20):
            yield b"\0" * (MEGABYTE // 10)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(
        "/api/classify", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413


def test_too_many_files_is_refused_with_413(client, catalog_photos):
    response = post(client, [catalog_photos[0]] * (MAX_FILES + 1))
    assert response.status_code == 413
    assert f"at most {MAX_FILES}" in response.json()["detail"]


def test_requests_without_files_are_refused(client):
    other_fields = client.post("/api/classify", data={"note": "hi"}, files={"other": ("a.jpg", b"x")})
    assert other_fields.status_code == 400 and other_fields.json()["detail"].startswith("no files")
    response = client.post("/api/classify", json={"files": []})
    assert response.status_code == 415 and "multipart/form-data" in response.json()["detail"]
    malformed = client.post(
        "/api/classify", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    assert malformed.status_code == 400 and malformed.json()["detail"].startswith("malformed")


def test_the_server_keeps_serving_after_bad_requests(client, catalog_photos):
    post(client, [("notes.txt", b"junk")])
    client.post(
        "/api/classify", content=b"--zz\r\n", headers={"content-type": "multipart/form-data; boundary=zz"}
    )
    response = post(client, [catalog_photos[1]])
    assert response.status_code == 200 and response.json()["results"][0]["status"] != "error"


def test_a_photo_in_a_field_named_file_is_classified_too(client, catalog_photos):
    name, data = catalog_photos[0]
    response = client.post("/api/classify", files={"file": (name, data)})  # curl -F file=@photo.jpg
    assert response.status_code == 200
    (result,) = response.json()["results"]
    assert result["path"] == name and result["status"] != "error"


def test_health_and_model(client):
    health = client.get("/api/health").json()
    assert health["status"] == "ok"
    assert health["max_files"] == MAX_FILES and health["max_upload_bytes"] == MEGABYTE
    card = client.get("/api/model").json()
    assert tuple(card["class_names"]) == CLASS_NAMES
    assert "test_accuracy" in card["metrics"]
    runtime = card["runtime"]
    metric = {"tflite_int8": "int8_test_accuracy", "tflite": "tflite_test_accuracy", "keras": "test_accuracy"}
    assert runtime["test_accuracy"] == card["metrics"][metric[runtime["file"]]]


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert 'type="file"' in page and "multiple" in page and "api/classify" in page
    assert not re.search(r"(src|href)=\"?https?:", page), "the page must load nothing from elsewhere"
    assert "default-src 'none'" in response.headers["content-security-policy"]


def test_serve_has_help_and_needs_its_extra(monkeypatch, capsys):
    assert cli.main(["serve", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real_find_spec(name, *a)
    )
    env = cli.Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    assert cli.main(["serve"], env) == cli.ExitStatus.USAGE
    assert "pip install" in env.stderr.getvalue() and "[serve]'" in env.stderr.getvalue()


def test_serve_help_names_its_own_limits(capsys):
    assert cli.main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--max-pixels MAX_PIXELS refuse larger images" in text
    assert f"(default: {SERVE_MAX_PIXELS})" in text and default("max_pixels") > SERVE_MAX_PIXELS
    for option in ("--conversions N", "--body-timeout SECONDS", "--allowed-host NAME", "/docs"):
        assert option in text


def test_serve_refuses_a_missing_model_before_listening(tmp_path):
    env = cli.Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    assert cli.main(["serve", "--model", str(tmp_path / "nothing"), "--port", "0"], env) == 2
    assert "model not found" in env.stderr.getvalue()


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


ABSOLUTE_PATH = re.compile(r"(^|[\s=])(/|~/|[A-Za-z]:\\)\w")


def test_the_model_card_shows_no_absolute_paths(client):
    card = client.get("/api/model").json()
    assert not [text for text in strings(card) if ABSOLUTE_PATH.search(text)]
    made_elsewhere = {
        "dataset": {"source": "/home/ann/data/fashion-mnist", "classes": ["T-shirt/top"]},
        "commands": [
            "fmnist-batch retrain --extra-data /work/photos/clothing --out runs/x",
            "C:\\models\\m.keras",
        ],
        "formula": "softmax(logits / temperature)",
    }
    public = public_card(made_elsewhere)
    assert not [text for text in strings(public) if ABSOLUTE_PATH.search(text)]
    assert public["dataset"]["source"].endswith("fashion-mnist") and public["dataset"]["classes"] == [
        "T-shirt/top"
    ]
    assert "--out runs/x" in public["commands"][0] and public["formula"] == made_elsewhere["formula"]


def test_the_favicon_is_a_small_png(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert len(response.content) < 2048
    icon = Image.open(io.BytesIO(response.content))
    assert icon.size == (32, 32) and icon.getextrema()[3] == (0, 255)  # a shape on a transparent ground


def test_the_api_docs_are_a_page_that_loads_nothing_from_elsewhere(client):
    response = client.get("/docs")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert not re.search(r"<script|(src|href)=\"?https?:", page)
    for text in (
        "POST /api/classify",
        "GET /api/health",
        "GET /api/model",
        "preview_png",
        "top3_prob",
        "413",
    ):
        assert text in page, text
    assert f"curl -F files=@shoe.jpg -F files=@bag.png {BASE_URL}/api/classify" in page
    assert "/docs" not in client.get("/openapi.json").json()["paths"]


def test_the_model_answer_gives_the_real_photo_figures_of_the_bundled_models(client):
    import json
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    documented = json.loads((repo / "docs" / "real_photos.json").read_text())
    expected = {s["key"]: s["accuracy"] for s in documented["sets"] if s["key"] in ("amateur", "on_model")}
    card = client.get("/api/model").json()
    assert {s["key"]: s["accuracy"] for s in card["real_photos"]} == expected
