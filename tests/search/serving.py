"""Helpers for the serving tests: a small router with a tiny encoder, a server started on a free
port of 127.0.0.1 in its own process, and a fake OpenAI-compatible backend on loopback."""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

from router_models import create_model, margin_offsets, save_router
from tests.search.procs import start_python

NAMES = ["small-llm", "mid-llm", "big-llm"]
COSTS = [0.1, 1.0, 5.0]
# a val cost curve as the search saves one: cost falls as the willingness to pay grows
CURVE = {"lambda": [0.0, 0.05, 0.2, 1.0], "val_cost": [4.0, 2.5, 1.0, 0.1]}


def make_router(path: Path, encoder: Path | None, dim: int = 16, costs: bool = True, seed: int = 0) -> Path:
    """A saved 3-LLM router reading ``dim``-d embeddings; with ``encoder`` (a folder) it records
    that encoder's identity, so it routes text."""
    from search.data.encode import load_encoder

    torch.manual_seed(seed)
    model = create_model({"model_type": "mlp", "model_config": {"hidden_dims": [32]}}, dim, len(NAMES))
    routing: dict[str, Any] = {
        "offsets": margin_offsets(3, anchor=1, margin=0.05),
        "rule": "margin on mid-llm",
    }
    if costs:
        routing["cost_curve"] = CURVE
    identity = load_encoder(str(encoder), "{prompt}").identity.to_dict() if encoder is not None else None
    save_router(
        model,
        path,
        model_names=NAMES,
        routing=routing,
        encoder=identity,
        costs=COSTS if costs else None,
        trial_number=3,
    )
    return path


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    first_line: str

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def start_server(
    args: list[str], cwd: Path, env: dict[str, str | None] | None = None, timeout: float = 90
) -> Server:
    """``python -m search serve ARGS --port 0`` (unless a port is given); waits for its first
    line (the URL it serves on)."""
    if "--port" not in args:
        args = [*args, "--port", "0"]
    proc = start_python(["-m", "search", "serve", *args], cwd, env)
    line = _first_line(proc, timeout)
    found = re.search(r"on (http://\S+?):? \(", line)
    if found is None:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the server did not start: {line!r}\n{out}\n{err}")
    return Server(proc, found.group(1), line)


def _first_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.2):
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    return ""


# -- a fake OpenAI-compatible backend ---------------------------------------------------------


class FakeBackend:
    """An OpenAI-style backend on 127.0.0.1: answers chat and completion requests (streamed when
    asked), records what it was sent; ``mode`` makes it fail (500) or hang."""

    def __init__(self, name: str, mode: str = "ok") -> None:
        self.name = name
        self.mode = mode
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.release = threading.Event()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                backend.received.append(body)
                backend.headers.append({k.lower(): v for k, v in self.headers.items()})
                if backend.mode == "hang":
                    backend.release.wait(30)
                    return
                if backend.mode == "fail":
                    self._send(500, {"error": {"message": "the model crashed"}})
                    return
                if backend.mode == "reject":
                    self._send(400, {"error": {"message": "max_tokens is too large"}})
                    return
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in _events(backend.name, body["model"]):
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                        time.sleep(0.05)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self._send(200, answer(backend.name, body["model"]))

            def _send(self, status: int, obj: dict[str, Any]) -> None:
                raw = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def answer(backend: str, model: str) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hello from {backend}"}}],
    }


def _events(backend: str, model: str) -> Iterator[bytes]:
    for word in ["hello", "from", backend]:
        delta = {"model": model, "choices": [{"index": 0, "delta": {"content": word}}]}
        yield f"data: {json.dumps(delta)}\n\n".encode()
    yield b"data: [DONE]\n\n"


# -- a server in this process (a thread), on a free port -----------------------------------


@dataclass
class Running:
    url: str
    router: Any
    server: Any


@contextlib.contextmanager
def running(
    target: Path, encoder: Path | None = None, backends: Path | None = None, **settings: Any
) -> Iterator[Running]:
    """The served router of ``target`` in a thread of this process on 127.0.0.1 (a real socket
    and HTTP, no process start-up); ``settings`` as ``ServeSettings`` takes them."""
    import uvicorn

    from search.serve.server import bind, make_app, uvicorn_config
    from search.serve.settings import ServeSettings

    served = ServeSettings(port=0, **settings)
    app, router, _ = make_app(
        str(target),
        served,
        encoder=str(encoder) if encoder else None,
        backends=str(backends) if backends else None,
    )
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn_config(app, served, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the in-process server did not start"
    try:
        yield Running(f"http://127.0.0.1:{sock.getsockname()[1]}", router, server)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def write_backends(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"backends": entries}))
    return path
