"""Which requests the server answers: Host checks (DNS rebinding) and Origin checks (cross-site posts)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
pytest.importorskip("python_multipart", reason="the [serve] extra is not installed")
from fastapi.testclient import TestClient

from fmnist_batch.model.runtime import load_job_model
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.serve.app import ServeOptions, create_app
from fmnist_batch.serve.security import same_origin, split_host

PORT = 8000
WILDCARD_ARRIVAL = "10.0.0.7"  # the address connections reach a server bound to 0.0.0.0 at, in these tests
NOT_A_PHOTO = [("files", ("notes.txt", b"not a photo"))]


@pytest.fixture(scope="module")
def model():
    return load_job_model(ClassifyOptions())


def make_client(model, host: str = "127.0.0.1", allowed: tuple[str, ...] = ()) -> TestClient:
    """A client of an app bound to host:PORT, connecting to that address (as scope["server"] says)."""
    address = WILDCARD_ARRIVAL if host in ("0.0.0.0", "::") else host
    address = f"[{address}]" if ":" in address else address
    app = create_app(ServeOptions(host=host, allowed_hosts=allowed), model)
    return TestClient(app, base_url=f"http://{address}:{PORT}")


@pytest.fixture(scope="module")
def loopback(model):
    with make_client(model) as client:
        yield client


def status_for_host(client: TestClient, host: str, path: str = "/api/health") -> int:
    return client.get(path, headers={"Host": host}).status_code


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "[::1]:8000", "LocalHost:8000"])
def test_a_loopback_server_answers_its_loopback_names(loopback, host):
    assert status_for_host(loopback, host) == 200


@pytest.mark.parametrize(
    "host",
    [
        "evil.example:8000",
        "evil.example",
        "127.0.0.1:8001",
        "localhost",
        "127.0.0.1:80",
        "[::1",
        "a:b:c",
        "x:99x",
    ],
)
def test_other_host_names_and_ports_are_refused_with_400(loopback, host):
    response = loopback.get("/api/health", headers={"Host": host})
    assert response.status_code == 400
    assert "does not answer to the host name" in response.json()["detail"]


def test_a_rebound_name_cannot_read_the_page_or_post_photos(loopback):
    assert status_for_host(loopback, "evil.example:8000", "/") == 400
    posted = loopback.post("/api/classify", files=NOT_A_PHOTO, headers={"Host": "evil.example:8000"})
    assert posted.status_code == 400


def test_a_server_on_every_address_answers_any_name_unless_told_which(model):
    with make_client(model, "0.0.0.0") as client:
        for host in ("evil.example:8000", "photos.example", "10.0.0.7:8000", "localhost:8000"):
            assert status_for_host(client, host) == 200, host
    with make_client(model, "0.0.0.0", allowed=("Photos.Example",)) as client:
        for host in ("photos.example", "photos.example:443", "10.0.0.7:8000", "localhost:8000"):
            assert status_for_host(client, host) == 200, host
        for host in ("evil.example:8000", "10.0.0.7:9000"):
            assert status_for_host(client, host) == 400, host


def test_a_server_on_one_address_answers_that_address_only(model):
    with make_client(model, "192.168.1.5") as client:
        assert status_for_host(client, "192.168.1.5:8000") == 200
        for host in ("localhost:8000", "127.0.0.1:8000", "evil.example:8000", "192.168.1.5:9000"):
            assert status_for_host(client, host) == 400, host
    with make_client(model, "::1") as client:
        assert status_for_host(client, "[::1]:8000") == 200
        assert status_for_host(client, "localhost:8000") == 200


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "http://127.0.0.1:3000", "http://127.0.0.1", "file://", "junk"]
)
def test_a_post_from_another_sites_page_is_refused_with_403(loopback, origin):
    response = loopback.post("/api/classify", files=NOT_A_PHOTO, headers={"Origin": origin})
    assert response.status_code == 403
    assert "cross-origin" in response.json()["detail"]


def test_posts_from_the_servers_own_page_and_from_curl_are_answered(loopback):
    same_site = loopback.post("/api/classify", files=NOT_A_PHOTO, headers={"Origin": "http://127.0.0.1:8000"})
    assert same_site.status_code == 200 and same_site.json()["results"][0]["status"] == "error"
    by_name = {"Origin": "http://localhost:8000", "Host": "localhost:8000"}
    assert loopback.post("/api/classify", files=NOT_A_PHOTO, headers=by_name).status_code == 200
    assert loopback.post("/api/classify", files=NOT_A_PHOTO).status_code == 200  # curl sends no Origin
    # reads are left to the browser's same-origin policy: no CORS header lets another site see them
    read = loopback.get("/api/health", headers={"Origin": "http://evil.example"})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers


def test_host_and_origin_parsing():
    assert split_host("[::1]:8000") == ("::1", 8000)
    assert split_host("Example.COM") == ("example.com", None)
    assert split_host("example.com:") is None and split_host("") is None and split_host(":80") is None
    assert split_host("host:65536") is None
    assert same_origin("https://photos.example", "photos.example")  # behind a TLS proxy
    assert same_origin("http://[::1]:8000", "[::1]:8000")
    assert not same_origin("http://photos.example:8080", "photos.example")
    assert not same_origin("ftp://127.0.0.1:8000", "127.0.0.1:8000")
    assert not same_origin("http://127.0.0.1:99999", "127.0.0.1:99999")
