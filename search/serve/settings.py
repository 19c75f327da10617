"""Every limit and switch of a served router, checked where it is made.

``ServeSettings`` is built by the command line (``search serve``) or by a caller of
``search.serve.server.serve``; a bad value raises ``UserError`` naming the setting, the value
and what is valid, before anything binds a port.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from typing import Any

from search.errors import UserError
from search.options import named, option

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


def _origins(values: Any) -> tuple[str, ...]:
    return tuple(values or ())


@dataclass(frozen=True)
class ServeSettings:
    """How a router is served: every limit and switch, declared once (its flag, help and
    range beside it); ``search serve``'s flags derive from these fields, and a bad value is one
    line naming its flag."""

    host: str = option("127.0.0.1", "--host", "address to bind (default 127.0.0.1)")
    port: int = option(8000, "--port", "TCP port (default 8000; 0: any free one)", parse=int)
    token: str | None = option(None, "", "the bearer token (from --token-file or the environment)", cli=False)
    max_body_bytes: int = option(1 << 20, "--max-body-bytes", "largest body (1 MiB; 413 above)", parse=int)
    max_prompts: int = option(256, "--max-prompts", "most prompts or embeddings per request (256)", parse=int)
    max_batch: int = option(64, "--max-batch", "most queries per batch (64)", parse=int)
    batch_wait_ms: float = option(
        0.5, "--batch-wait-ms", "longest a batch that is not full waits for more requests (0.5)", parse=float
    )
    queue_size: int = option(1024, "--queue-size", "most queries waiting (1024; 503 beyond)", parse=int)
    request_timeout_s: float = option(
        30.0, "--request-timeout", "seconds a request may wait (30; 504 after)", parse=float
    )
    backend_timeout_s: float = option(
        120.0,
        "--backend-timeout",
        "seconds the proxy waits on a backend to connect or send its next bytes (120)",
        parse=float,
    )
    graceful_timeout_s: float = option(
        30.0, "--graceful-timeout", "seconds to finish on SIGTERM (30)", parse=float
    )
    max_reply_bytes: int = option(
        64 * 1024 * 1024,
        "--max-reply-bytes",
        "longest non-streamed backend answer relayed (64 MiB; cut beyond)",
        parse=int,
    )
    header_timeout_s: float = option(
        10.0, "--header-timeout", "seconds to send a request's headers (10)", parse=float
    )
    max_connections: int = option(
        1024, "--max-connections", "most connections open at once (1024; one more is closed)", parse=int
    )
    cors_origins: tuple[str, ...] = option(
        (), "--cors-origin", "an origin CORS allows (repeatable; none: no CORS headers)", action="append"
    )
    access_log: bool = option(False, "--access-log", "log one line per request", action="store_true")

    def __post_init__(self) -> None:
        object.__setattr__(self, "cors_origins", _origins(self.cors_origins))
        if not isinstance(self.host, str) or not self.host or any(c.isspace() for c in self.host):
            raise UserError(f"{flag('host')} {self.host!r}: give an address to bind, such as 127.0.0.1")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise UserError(f"{flag('port')} {self.port!r}: give a TCP port in 0..65535 (0: any free one)")
        for name in POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"{flag(name)} {value!r}: give a whole number >= 1")
        for name, low in SECONDS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or not (value >= 0 if low == ">= 0" else value > 0):
                raise UserError(f"{flag(name)} {value!r}: give a number {low}")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise UserError("the bearer token is empty or holds whitespace: give one word of printable text")
        if self.token is None and not is_loopback(self.host):
            raise UserError(
                f"{flag('host')} {self.host}: serving beyond this machine needs a bearer token "
                f"(--token-file FILE, or the {TOKEN_ENV} environment variable)"
            )

    def replace(self, **changes: object) -> ServeSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # never show the token
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "token"}
        return f"ServeSettings(token={'set' if self.token else None}, {shown})"


def flag(name: str) -> str:
    """Setting ``name`` as ``search serve`` names it."""
    return named(ServeSettings, name, api=False)


POSITIVE_INTS = (
    "max_body_bytes",
    "max_prompts",
    "max_batch",
    "queue_size",
    "max_reply_bytes",
    "max_connections",
)
SECONDS = {  # the settings in seconds (and milliseconds), with their lower bound
    "batch_wait_ms": ">= 0",
    "request_timeout_s": "> 0",
    "backend_timeout_s": "> 0",
    "graceful_timeout_s": "> 0",
    "header_timeout_s": "> 0",
}
