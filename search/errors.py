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


class UserError(Exception):
    """Bad input from the user (data, space, CLI); the message says what, where, what is valid."""


class DataError(UserError):
    """Router data that cannot be used: the message names the file and the row or column."""


class SpaceError(UserError):
    """A search-space YAML that does not validate: the message names the key path."""
