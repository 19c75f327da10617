"""The routing proxy against hostile backends, and connections that would hold the server: the
proxy relays a chunk at a time (compressed answers pass on compressed), stops reading when the
client leaves, cuts a long plain answer, maps what it does not relay to 502, and never shows a
key, a URL's password or a server path; idle and half-sent connections are closed, and the open
connections are bounded."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("uvicorn", reason="the serve extra (uvicorn, httpx, orjson) is not installed")
import httpx  # noqa: E402

from tests.search.encoders import make_encoder  # noqa: E402
from tests.search.serving import make_router, running, write_backends  # noqa: E402

KEY = "sk-live-0123456789abcdef"


class Hostile:
    """A backend on 127.0.0.1 that misbehaves as ``mode`` says; records when its writes
    started failing (its client, the proxy, went away)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.gone_at: float | None = None
        self.bomb = gzip.compress(b" " * (50 * 1024 * 1024), 9)  # 50 MB of spaces in about 50 KB
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers["Content-Length"]))
                getattr(self, f"_{hostile.mode}")()

            def _endless(self) -> None:  # a plain answer that never ends
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for _ in range(100_000):
                        chunk = b"x" * 65536
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        time.sleep(0.01)
                except OSError:
                    hostile.gone_at = time.monotonic()

            def _gzip(self) -> None:  # a small compressed answer that inflates to 50 MB
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(hostile.bomb)))
                self.end_headers()
                self.wfile.write(hostile.bomb)

            def _gzip_error(self) -> None:  # a 500 whose compressed body inflates to 50 MB
                self.send_response(500)
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(hostile.bomb)))
                self.end_headers()
                self.wfile.write(hostile.bomb)

            def _quote_key(self) -> None:  # a 401 that quotes the key it got
                got = self.headers.get("Authorization", "")
                self._json(401, {"error": {"message": f"invalid key: {got.removeprefix('Bearer ')}"}})

            def _redirect(self) -> None:
                self.send_response(302)
                self.send_header("Location", "http://example.invalid/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _big200(self) -> None:  # a plain answer of 200 MB, written a MB at a time
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(200 * 2**20))
                self.end_headers()
                try:
                    for _ in range(200):
                        self.wfile.write(b" " * 2**20)
                except OSError:
                    hostile.gone_at = time.monotonic()

            def _big(self) -> None:  # a plain answer of 3 MB
                self._json(200, {"choices": [{"text": "y" * (3 * 1024 * 1024)}]})

            def _json(self, status: int, obj: dict[str, Any]) -> None:
                raw = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def router_file(tmp_path_factory) -> Path:
    encoder = make_encoder(tmp_path_factory.mktemp("enc"), seed=0, dim=16, max_seq_length=16)
    return make_router(tmp_path_factory.mktemp("router") / "router.pt", encoder)


def _chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "what is the sum"}], **extra}


def _served(tmp_path: Path, router_file: Path, url: str, **settings: Any):
    backends = write_backends(
        tmp_path / "b.yaml", {"small-llm": {"base_url": url, "model": "m", "api_key_env": "HOSTILE_KEY"}}
    )
    return running(router_file, backends=backends, **settings)


def test_a_compressed_answer_is_passed_on_compressed(router_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    backend = Hostile("gzip")
    try:
        with _served(tmp_path, router_file, backend.url()) as r:
            with (
                httpx.Client(timeout=30) as client,
                client.stream("POST", r.url + "/v1/chat/completions", json=_chat("small-llm")) as resp,
            ):
                raw = b"".join(resp.iter_raw())
            assert resp.status_code == 200 and resp.headers["content-encoding"] == "gzip"
            assert raw == backend.bomb  # as the backend sent it: never inflated by the proxy
            backend.mode = "gzip_error"  # an error's compressed body is read capped, not inflated
            resp = httpx.post(r.url + "/v1/chat/completions", json=_chat("small-llm"), timeout=30)
            assert resp.status_code == 502 and "failed (500)" in resp.json()["error"]["message"]
    finally:
        backend.close()


def test_a_client_that_leaves_stops_the_reading_and_a_long_answer_is_cut(
    router_file, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    backend = Hostile("endless")
    try:
        with _served(tmp_path, router_file, backend.url()) as r:
            with (
                httpx.Client(timeout=30) as client,
                client.stream("POST", r.url + "/v1/chat/completions", json=_chat("small-llm")) as resp,
            ):
                assert resp.status_code == 200
                next(resp.iter_raw())  # a first chunk arrives as the backend sends it
            left = time.monotonic()  # the client is gone
            deadline = left + 10
            while backend.gone_at is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert backend.gone_at is not None and backend.gone_at - left < 5
        backend.mode, backend.gone_at = "big", None
        with _served(tmp_path, router_file, backend.url(), max_reply_bytes=1024 * 1024) as r:
            with (
                httpx.Client(timeout=30) as client,
                client.stream("POST", r.url + "/v1/chat/completions", json=_chat("small-llm")) as resp,
            ):
                try:
                    got = b"".join(resp.iter_raw())
                except httpx.HTTPError:
                    got = b""
            assert len(got) <= 1024 * 1024
    finally:
        backend.close()


def test_secrets_and_redirects_never_reach_the_client(router_file, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HOSTILE_KEY", KEY)
    backend = Hostile("quote_key")
    try:
        with _served(tmp_path, router_file, backend.url()) as r:
            resp = httpx.post(r.url + "/v1/chat/completions", json=_chat("small-llm"), timeout=30)
            message = resp.json()["error"]["message"]
            assert resp.status_code == 502 and "refused its API key (401): invalid key: [redacted]" in message
            assert KEY not in resp.text
        with _served(tmp_path, router_file, backend.url("bob:hunter2@")) as r:  # sent as Basic auth
            resp = httpx.post(r.url + "/v1/chat/completions", json=_chat("small-llm"), timeout=30)
            assert (
                resp.status_code == 502 and "invalid key: Basic [redacted]" in resp.json()["error"]["message"]
            )
            assert "hunter2" not in resp.text and "bob" not in resp.text and "Ym9i" not in resp.text
            backend.mode = "redirect"  # a redirect is never followed nor passed on empty
            resp = httpx.post(r.url + "/v1/chat/completions", json=_chat("small-llm"), timeout=30)
            assert resp.status_code == 502
            assert "answered what the proxy does not relay (302)" in resp.json()["error"]["message"]
            backend.close()  # gone: the error names the host, not the credentials
            resp = httpx.post(r.url + "/v1/chat/completions", json=_chat("small-llm"), timeout=30)
            assert resp.status_code == 502 and "hunter2" not in resp.text and "bob" not in resp.text
            card = httpx.get(r.url + "/v1/models").json()["router"]
            assert str(tmp_path) not in json.dumps(card) and "/" not in card["encoder"]["name"]
    finally:
        backend.close()


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def test_idle_and_half_sent_connections_are_closed_and_bounded(router_file) -> None:
    with running(router_file, header_timeout_s=0.5, max_connections=8) as r:
        port = int(r.url.rsplit(":", 1)[1])
        idle = socket.create_connection(("127.0.0.1", port))
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        start = time.monotonic()
        assert _closed_within(idle, 5) and _closed_within(half, 5)
        assert time.monotonic() - start < 4
        many = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
        extra = socket.create_connection(("127.0.0.1", port))
        assert _closed_within(extra, 2)  # the ninth is closed as it is accepted
        for s in (idle, half, *many, extra):
            s.close()
        time.sleep(0.2)
        assert httpx.get(r.url + "/healthz", timeout=10).status_code == 200  # and it serves on


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://[::1/v1", "base_url: not a URL (Invalid IPv6 URL)"),
        ("http://127.0.0.1:99999/v1", "base_url: not a URL (Port out of range 0-65535)"),
        ("http://bob:hunter2@/v1", "base_url: give an http:// or https:// URL, got 'http://[redacted]@/v1'"),
    ],
)
def test_a_backends_url_that_is_no_url_is_one_line(tmp_path, url, message) -> None:
    from search.errors import UserError
    from search.serve.backends import read_backends

    path = write_backends(tmp_path / "b.yaml", {"small-llm": {"base_url": url, "model": "m"}})
    with pytest.raises(UserError) as info:
        read_backends(path, ["small-llm"])
    assert message in str(info.value) and "\n" not in str(info.value) and "hunter2" not in str(info.value)
