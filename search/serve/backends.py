"""The backends file of the routing proxy: per LLM, where to send the requests routed to it.

    # backends.yaml
    backends:
      Meta-Llama-3.1-70B-Instruct:          # an LLM as the router names it
        base_url: http://127.0.0.1:9001/v1  # an OpenAI-compatible API (it serves /chat/completions)
        model: meta-llama/Llama-3.1-70B-Instruct   # the model name to send it
        api_key_env: LLAMA_API_KEY          # optional: the variable holding its API key
        timeout_s: 60                       # optional: the longest wait for its next bytes

The proxy routes only among the LLMs listed (a router's other LLMs are never chosen). Keys are
read from the environment once, at start, and are never printed or logged.
"""

from __future__ import annotations

import base64
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from search.errors import UserError
from search.files.parse import load_yaml, read_text
from search.redact import redact, shown_url

FIELDS = ("base_url", "model", "api_key_env", "timeout_s")
MAX_BYTES = 1 << 20
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Backend:
    """Where one LLM's requests go."""

    llm: str
    base_url: str
    model: str
    timeout_s: float | None = None
    api_key: str | None = field(default=None, repr=False)

    def url(self, endpoint: str) -> str:
        return self.base_url.rstrip("/") + "/" + endpoint.lstrip("/")

    @property
    def shown(self) -> str:
        """How messages name it: the LLM and its host and port (never a key, a user or a
        password in the URL)."""
        return f"{self.llm!r} ({shown_url(self.base_url)})"

    @property
    def secrets(self) -> list[str]:
        """What no message may carry: its key, and the user and password of its URL."""
        parts = urlsplit(self.base_url)
        basic = None  # what an HTTP client sends for a URL's user and password
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            basic = base64.b64encode(pair.encode()).decode()
        return [s for s in (self.api_key, parts.password, parts.username, basic) if s]


def _entry(name: str, raw: Any, where: str) -> Backend:
    at = f"{where}: backends.{name}"
    if not isinstance(raw, dict):
        raise UserError(
            f"{at}: give a mapping with base_url and model (and optionally api_key_env, timeout_s)"
        )
    unknown = [k for k in raw if k not in FIELDS]
    if unknown:
        raise UserError(f"{at}: unknown key {unknown[0]!r}; keys: {', '.join(FIELDS)}")
    url = raw.get("base_url")
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
        host, _ = (parts.hostname, parts.port) if parts is not None else (None, None)
    except ValueError as exc:  # a bracket left open, a port out of 0-65535
        raise UserError(f"{at}.base_url: not a URL ({exc}): {redact(str(url))!r}") from exc
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise UserError(f"{at}.base_url: give an http:// or https:// URL, got {redact(str(url))!r}")
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise UserError(f"{at}.model: give the model name to send the backend, got {model!r}")
    timeout = raw.get("timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise UserError(f"{at}.timeout_s: give a number of seconds > 0, got {timeout!r}")
    env = raw.get("api_key_env")
    key = None
    if env is not None:
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env):
            raise UserError(f"{at}.api_key_env: give an environment variable's name, got {env!r}")
        key = os.environ.get(env)
        if not key:
            raise UserError(f"{at}.api_key_env: the environment variable {env} is not set (or empty)")
    return Backend(name, str(url), model, float(timeout) if timeout is not None else None, key)


def read_backends(path: str | os.PathLike[str], llms: list[str]) -> dict[str, Backend]:
    """The backends of ``path`` by LLM name, each one of the router's ``llms``.

    Raises:
        UserError: One line naming the file, the entry and what is valid.
    """
    where = str(path)
    if not Path(path).is_file():
        raise UserError(f"--backends {where}: no such file")
    raw = load_yaml(read_text(path, "backends file", MAX_BYTES), where)
    if not isinstance(raw, dict) or set(raw) != {"backends"} or not isinstance(raw["backends"], dict):
        raise UserError(f"{where}: give one key, backends, mapping each LLM to its base_url and model")
    if not raw["backends"]:
        raise UserError(f"{where}: backends is empty; list at least one of the router's LLMs")
    out = {}
    for name, entry in raw["backends"].items():
        if name not in llms:
            close = difflib.get_close_matches(str(name), llms, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; its LLMs: {', '.join(llms[:8])}"
            hint += " ..." if not close and len(llms) > 8 else ""
            raise UserError(f"{where}: backends.{name}: not an LLM of this router{hint}")
        out[str(name)] = _entry(str(name), entry, where)
    return out
