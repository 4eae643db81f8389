"""The real server (`fmnist-batch serve` in a subprocess on a loopback port) under hostile uploads: huge
images that compress to almost nothing, several at once, and clients that stall halfway through a body."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")
pytest.importorskip("python_multipart", reason="the [serve] extra is not installed")

from fmnist_batch.serve.settings import SERVE_MAX_PIXELS

REPO = Path(__file__).resolve().parent.parent
MEGABYTE = 1024 * 1024
GIGABYTE_KB = 1024 * 1024  # /proc/PID/status counts in kB
BODY_TIMEOUT = 1.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process, self.port = process, port
        self.url = f"http://127.0.0.1:{port}"

    def memory_kb(self, field: str) -> int:
        """VmHWM (the peak resident memory so far) or VmRSS of the server process, in kB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith(field + ":"))
        return int(line.split()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux's /proc to measure the server's memory")
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    command = [sys.executable, "-m", "fmnist_batch", "serve", "--port", str(port)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, "--body-timeout", str(BODY_TIMEOUT)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    running = Server(process, port)
    try:
        wait_until_up(running, log)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def wait_until_up(server: Server, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(server.url + "/api/health", timeout=5):
                return
        except OSError:
            if server.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start:\n{log.read_text()}")
            time.sleep(0.2)


def flat_png(width: int, height: int, channels: int = 3) -> bytes:
    """An 8-bit PNG of width x height (RGB, or RGBA with channels=4), black with a grey box in the middle:
    a few hundred kB however large the image, written row by row so the test never holds the pixels."""
    row_bytes = channels * width
    black = bytes(1 + row_bytes)  # each row: filter type 0, then the pixels
    boxed = bytes(1 + channels * (width // 4)) + b"\xc8" * (channels * (width // 2))
    boxed += bytes(len(black) - len(boxed))
    compressor = zlib.compressobj(9)
    stream = [
        compressor.compress(boxed if height // 4 <= y < 3 * height // 4 else black) for y in range(height)
    ]
    stream.append(compressor.flush())

    def chunk(name: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + name + body + zlib.crc32(name + body).to_bytes(4, "big")

    colour_type = {3: 2, 4: 6}[channels]
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, colour_type, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(stream)) + chunk(b"IEND", b"")
    )


def post_file(url: str, name: str, data: bytes, timeout: float = 120) -> dict:
    boundary = "fmnist-test-boundary"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
    body = (head + "Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url + "/api/classify",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def post_at_once(server: Server, data: bytes, count: int = 3) -> list[dict]:
    with ThreadPoolExecutor(count) as pool:
        answers = pool.map(lambda i: post_file(server.url, f"big-{i}.png", data), range(count))
        return [answer["results"][0] for answer in answers]


def test_three_huge_pngs_at_once_keep_the_server_under_a_gigabyte(server):
    data = flat_png(12_000, 12_000)  # 144 megapixels, 432 MB decoded
    assert len(data) < MEGABYTE
    results = post_at_once(server, data)
    for result in results:
        refused = result["status"] == "error" and result["error"].startswith("image too large")
        assert refused or result["status"] in ("ok", "uncertain"), result
    assert server.memory_kb("VmHWM") < GIGABYTE_KB


def test_images_just_under_the_cap_decode_and_memory_is_given_back(server):
    width = 7_000
    # RGBA: compositing the alpha onto white makes these the costliest common PNGs to convert
    data = flat_png(width, SERVE_MAX_PIXELS // width - 10, channels=4)
    before = server.memory_kb("VmRSS")
    results = post_at_once(server, data)
    # decoded and answered (a grey box on black is none of the 10 classes: the judge may say so)
    assert all(r["status"] in ("ok", "uncertain", "other") and r["label"] for r in results), results
    assert server.memory_kb("VmHWM") < GIGABYTE_KB
    assert server.memory_kb("VmRSS") < before + 200 * 1024, "the decoded images' memory was kept"


def test_a_stalled_upload_is_dropped_after_the_body_timeout(server):
    head = (
        f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        "Content-Type: multipart/form-data; boundary=zz\r\nContent-Length: 100000\r\n\r\n"
        '--zz\r\nContent-Disposition: form-data; name="files"; filename="slow.png"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=BODY_TIMEOUT + 20) as client:
        client.sendall(head.encode() + b"\x89PNG" + bytes(100))
        started = time.monotonic()
        answer = b""
        while chunk := client.recv(4096):  # the server must answer, then close the connection
            answer += chunk
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"timed out" in answer
    assert BODY_TIMEOUT * 0.9 <= waited < BODY_TIMEOUT + 10
    assert post_file(server.url, "empty.png", b"")["results"][0]["error"] == "empty file"
