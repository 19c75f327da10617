"""Every limit and switch of a served router, checked where it is made.

``ServeSettings`` is built by the command line (``search serve``) or by a caller of
``search.serve.server.serve``; a bad value raises ``UserError`` naming the setting, the value
and what is valid, before anything binds a port.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass

from search.errors import UserError

TOKEN_ENV = "ROUTER_SEARCH_TOKEN"  # the bearer token, when no --token-file is given
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """How a router is served.

    Args:
        host: Address to bind (127.0.0.1; any other that is not loopback needs ``token``).
        port: TCP port (0: any free one, printed at start).
        token: The bearer token every request but ``/healthz`` must carry; None: no check.
        max_body_bytes: Largest request body accepted (413 above it).
        max_prompts: Most prompts or embeddings in one route request (413 above it).
        max_batch: Most queries the encoder and the router take in one batch.
        batch_wait_ms: How long a batch that is not full waits for more requests.
        queue_size: Most queries waiting for a batch; a request beyond it gets 503 and
            ``Retry-After``.
        request_timeout_s: Longest a route request waits for its decision (504 after it).
        backend_timeout_s: Longest the proxy waits on a backend to connect or send the next
            bytes (504 after it), unless the backends file sets one per backend.
        graceful_timeout_s: On SIGTERM, how long requests in flight may take to finish.
        max_reply_bytes: The longest non-streamed answer the proxy relays (cut beyond it);
            answers pass through a chunk at a time, so this bounds time, not memory.
        header_timeout_s: How long a connection may take to send a request's headers (from its
            first byte, or the previous response); closed after it.
        max_connections: Most connections open at once; one more is closed as it is accepted.
        cors_origins: Origins allowed by CORS; empty: no CORS headers at all.
        access_log: One log line per request (off: the hot path stays quiet).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_body_bytes: int = 1 << 20
    max_prompts: int = 256
    max_batch: int = 64
    batch_wait_ms: float = 0.5
    queue_size: int = 1024
    request_timeout_s: float = 30.0
    backend_timeout_s: float = 120.0
    graceful_timeout_s: float = 30.0
    max_reply_bytes: int = 64 * 1024 * 1024
    header_timeout_s: float = 10.0
    max_connections: int = 1024
    cors_origins: tuple[str, ...] = ()
    access_log: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise UserError(f"--host {self.host!r}: give an address to bind, such as 127.0.0.1")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port!r}: give a TCP port in 0..65535 (0: any free one)")
        positive_ints = (
            "max_body_bytes",
            "max_prompts",
            "max_batch",
            "queue_size",
            "max_reply_bytes",
            "max_connections",
        )
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"--{name.replace('_', '-')} {value!r}: give a whole number >= 1")
        for name in (
            "batch_wait_ms",
            "request_timeout_s",
            "backend_timeout_s",
            "graceful_timeout_s",
            "header_timeout_s",
        ):
            value = getattr(self, name)
            low_ok = value >= 0 if name == "batch_wait_ms" else value > 0
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low_ok:
                bound = ">= 0" if name == "batch_wait_ms" else "> 0"
                raise UserError(f"--{name.replace('_', '-')} {value!r}: give a number {bound}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise UserError("the bearer token is empty or holds whitespace: give one word of printable text")
        if self.token is None and not is_loopback(self.host):
            raise UserError(
                f"--host {self.host}: serving beyond this machine needs a bearer token "
                f"(--token-file FILE, or the {TOKEN_ENV} environment variable)"
            )

    def replace(self, **changes: object) -> ServeSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never show the token
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "token"}
        return f"ServeSettings(token={'set' if self.token else None}, {shown})"
