"""User-facing errors: the CLI prints them as one line and exits 2."""

from __future__ import annotations

import errno

# A full or read-only disk is said in one line, like bad input: the run can be resumed once
# space is freed.
DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped (a key or a file name
    may hold them), so an error is always one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def first_line(exc: BaseException | object, typed: bool = False) -> str:
    """What an exception (or any answer) says, its first line only (a library's message may run
    to many lines of advice); its type's name when it says nothing. With ``typed``, the type's
    name first (``ValueError: ...``)."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    name = type(exc).__name__
    if typed:
        return f"{name}: {text}" if text else name
    return text or name


class UserError(Exception):
    """Bad input from the user (data, space, CLI); the message says what, where, what is valid,
    on one line (control characters in it are escaped)."""

    def __init__(self, message: str = "") -> None:
        super().__init__(one_line(str(message)))


class DataError(UserError):
    """Router data that cannot be used: the message names the file and the row or column."""


class SpaceError(UserError):
    """A search-space YAML that does not validate: the message names the key path."""
