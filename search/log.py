"""How the library speaks: through loggers under ``search`` (``search.driver``, ``search.data``,
...), never by printing. A caller decides where it goes: the command line (and ``search.run``,
``search.train`` for a caller who set up no handler of their own) installs the plain handler for
the call, ``quiet`` and ``verbose`` set the level.

The plain handler writes each message as it is (``note: ...``, ``warning: ...`` carry their own
words) to the ``sys.stdout`` of the moment it is emitted, or to ``sys.stderr`` for a record
logged with ``extra=TO_STDERR``; so a test's capture, or a caller's redirect, sees it.

>>> import logging, sys
>>> with plain_output(logging.INFO):
...     logger("demo").info("hello")
hello
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

ROOT = "search"
TO_STDERR = {"stream": "stderr"}  # ``extra=`` for a record that goes to standard error


def logger(name: str) -> logging.Logger:
    """The logger of one part of the library (``search.<name>``)."""
    return logging.getLogger(f"{ROOT}.{name}")


class PlainHandler(logging.Handler):
    """Each record's message alone, to the current ``sys.stdout`` (``sys.stderr`` when logged
    with ``extra=TO_STDERR``), flushed at once."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if getattr(record, "stream", "") == "stderr" else sys.stdout
            stream.write(record.getMessage() + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed pipe is the caller's; logging must not raise
            self.handleError(record)


@contextlib.contextmanager
def plain_output(level: int = logging.INFO) -> Iterator[None]:
    """The library's messages from ``level`` up, printed plainly for the duration (the command
    line's, and the API's default). A caller who attached a handler of their own to the
    ``search`` logger keeps it and their level: nothing is installed then. The logger's state
    is restored afterwards."""
    root = logging.getLogger(ROOT)
    if any(not isinstance(h, PlainHandler) for h in root.handlers):
        yield
        return
    handler = PlainHandler()
    saved = (root.level, root.propagate)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False  # once here, not again through a root handler the caller set up
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        root.propagate = saved[1]
