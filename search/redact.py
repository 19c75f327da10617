"""One redaction for every message that may carry a secret or a server path: a backend's own
error text, a URL, an exception's words. Used by the proxy, the backends file, the served
router's card and the encoder's load errors.

>>> redact("401: bad key sk-abc123 for http://bob:hunter2@llm.internal:9000/v1", ["sk-abc123"])
'401: bad key [redacted] for http://[redacted]@llm.internal:9000/v1'
>>> redact("Authorization: Bearer eyJhbGciOi.x.y")
'Authorization: Bearer [redacted]'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

HIDDEN = "[redacted]"
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_BEARER = re.compile(
    r"(?i)\b(bearer|basic|token|api[_-]?key|authorization)(\s*[:=]?\s*)([A-Za-z0-9._~+/=-]{8,})"
)
_KEY_LIKE = re.compile(r"\b(sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{8,}\b")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every given secret, every URL's user and password, bearer tokens and API
    keys of the usual shapes replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, HIDDEN)
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{HIDDEN}@", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{HIDDEN}", text)
    return _KEY_LIKE.sub(HIDDEN, text)


def shown_url(url: str) -> str:
    """How a message names a URL: its scheme, host and port, never its user, password, path or
    query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an unreadable URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def shown_path(path: str) -> str:
    """A local file or folder as a message shown to other machines names it: its last part."""
    return os.path.basename(os.path.normpath(path)) if (os.sep in path or path.startswith(".")) else path
