"""The error a request gets: a status, one line of JSON, never a traceback or a file path.

The body has the shape OpenAI-style clients read (``{"error": {"message", "type", "code"}}``),
so the routing proxy's clients see our errors as they see their backend's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

REASONS = {
    400: "invalid_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    502: "backend_error",
    503: "overloaded",
    504: "timeout",
}


class HTTPError(Exception):
    """A request that ends in ``status`` with ``message`` (one line, safe to show a client)."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"status must be a 4xx or 5xx, got {status!r}")
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())  # one line, whatever it was given
        self.headers = dict(headers or {})

    def body(self) -> bytes:
        return error_body(self.status, self.message)


def error_body(status: int, message: str) -> bytes:
    """``{"error": {"message": ..., "type": ..., "code": status}}`` on one line, newline-ended."""
    kind = REASONS.get(status, "error")
    return (
        json.dumps({"error": {"message": message, "type": kind, "code": status}}, separators=(",", ":"))
        + "\n"
    ).encode()
