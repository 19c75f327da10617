"""Connections that cannot hold the server: a time limit on reading a request's headers and a
bound on open connections, on the HTTP protocol the server runs (uvicorn's httptools one).

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive``, but a connection that
never sends its first request's headers (no bytes at all, or half of them) is kept without a
limit, and each holds a file descriptor: enough of them and the server can accept nothing. Here
every request's headers must be complete within ``header_timeout_s`` of the connection's first
byte or of the previous response (else the connection is closed), and a connection beyond
``max_connections`` open at once is closed as it is accepted.

Who calls what: ``server.uvicorn_config`` passes :func:`guarded_protocol`'s class to uvicorn,
which makes one protocol object per connection and calls the hooks below.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("search.serve")


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with a header-read timeout and a connection bound.

    Raises:
        ImportError: uvicorn or httptools is missing (the serve extra).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class Guarded(HttpToolsProtocol):
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("refused a connection: %d open (--max-connections)", len(self.connections) - 1)
                transport.close()
                return
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self.header_timer is None:
                self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self.header_timer = self.loop.call_later(header_timeout_s, self._too_slow)

        def _disarm(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def _too_slow(self) -> None:
            self.header_timer = None
            if self.cycle is None or self.cycle.response_complete:  # no request being answered
                self.transport.close()

    return Guarded
