"""Ray clusters reached at an address, every way the connection can fail said in one line within
seconds (our own local instance is in ``session.py``).

Clusters since Ray 2.59 may require a token (``RAY_AUTH_MODE=token``). Ray's driver turns token
mode on by itself only for a cluster it finds locally; for an explicit address it connects
without one and retries for as long as its timeout allows. So before connecting, one short probe
of the cluster's GCS checks that a Ray cluster answers there; when it asks for a token, token
mode is turned on with the token available here (``RAY_AUTH_TOKEN``, the file named by
``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``) and the probe asks again. It also checks that
the cluster's Ray and Python versions are this driver's and that this machine is one of its
nodes. The token itself is never printed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from search.deadline import in_thread
from search.errors import UserError, first_line

PROBE_TIMEOUT_S = 4.0
TOKEN_HELP = (
    "put the cluster's token in RAY_AUTH_TOKEN, or in a file named by RAY_AUTH_TOKEN_PATH or "
    "~/.ray/auth_token (`ray get-auth-token` on the head prints it); keep it out of code, logs "
    "and version control"
)


def _raylet() -> Any:
    """Ray's compiled core (its GCS client and settings; no public API offers them)."""
    return importlib.import_module("ray._raylet")


def token_source() -> str | None:
    """Where this driver's Ray auth token comes from (Ray's own order), or None: never the token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if path:
        return f"the file {path} (RAY_AUTH_TOKEN_PATH)" if Path(path).expanduser().is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return f"the file {default}" if default.is_file() else None


def enable_token_auth() -> str | None:
    """Turn Ray's token mode on for this process and its children when a token is available
    and ``RAY_AUTH_MODE`` is unset; returns where the token comes from (None: not in token mode)."""
    source = token_source()
    if source is not None and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        raylet = _raylet()
        raylet.Config.initialize("")  # Ray reads its settings once; read them again
        raylet.AuthenticationTokenLoader.instance().reset_cache()
    return source if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else None


def _split(address: str) -> tuple[str, int]:
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected auto, host:port or ray://host:port")
    return host, int(port)


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer."""
    if address == "auto":
        return
    host, port = _split(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(
            f"--address {address}: cannot connect ({exc.strerror or exc}); is the cluster up, and is "
            "this the port `ray start --head` printed?"
        ) from exc


_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def speaks_grpc(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether the server at host:port answers an HTTP/2 preface with a SETTINGS frame, as every
    gRPC server (a Ray GCS) does; a web server, a database or a silent port does not."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(_H2_PREFACE)
            head = sock.recv(9)
    except OSError:
        return False
    return len(head) == 9 and head[3] == 0x04  # frame type 4: SETTINGS


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Ray's C++ client logs each failed attempt to stderr itself: hold those lines back."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _refused(answer: Any) -> bool:
    return type(answer).__name__ == "AuthenticationError" or "Unauthenticated" in str(answer)


def probe(address: str) -> str | None:
    """Check, in seconds, that a Ray cluster's GCS answers at ``address``, accepts this driver,
    runs this driver's Ray and Python, and has a node on this machine. A cluster that asks for
    a token gets this driver's (token mode is turned on only then: in token mode the driver's
    workers would refuse a cluster without authentication). Returns where the token came from.

    Raises:
        UserError: One line naming the cause and the fix.
    """
    import ray

    not_ray = UserError(
        f"--address {address}: something listens there, but no Ray cluster answered within "
        f"{PROBE_TIMEOUT_S:.0f} s; give the GCS port `ray start --head` printed (default 6379)"
    )
    if not speaks_grpc(*_split(address)):
        raise not_ray

    def ask() -> tuple[dict[str, Any], list[str]]:
        client = _raylet().InnerGcsClient.standalone(address, None, int(PROBE_TIMEOUT_S * 1000))
        from ray._common.usage import usage_lib

        metadata = usage_lib.get_cluster_metadata(client) or {}
        nodes = client.get_all_node_info(timeout=PROBE_TIMEOUT_S)
        alive = [n.node_manager_address for n in nodes.values() if n.state == 0]
        return metadata, alive

    token = enable_token_auth() if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" else None
    with _quiet_stderr():
        finished, answer = in_thread(ask, PROBE_TIMEOUT_S + 0.5)
        if finished and _refused(answer) and token is None and "RAY_AUTH_MODE" not in os.environ:
            token = enable_token_auth()
            if token is not None:
                finished, answer = in_thread(ask, PROBE_TIMEOUT_S + 0.5)
    if not finished or (isinstance(answer, Exception) and "Timed out" in str(answer)):
        raise not_ray
    if isinstance(answer, Exception):
        if _refused(answer):
            if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
                raise UserError(
                    f"--address {address}: the cluster requires a token but RAY_AUTH_MODE=disabled here; "
                    f"unset it and {TOKEN_HELP}"
                )
            if token is None:
                raise UserError(
                    f"--address {address}: the cluster requires a token and none is set here; {TOKEN_HELP}"
                )
            raise UserError(
                f"--address {address}: the cluster refused the token from {token}: it is not the "
                f"token the cluster was started with; {TOKEN_HELP}"
            )
        raise UserError(f"--address {address}: the cluster did not answer ({first_line(answer)})")
    metadata, alive = answer
    import platform

    here = (ray.__version__, ".".join(platform.python_version_tuple()[:2]))
    there = (metadata.get("ray_version"), ".".join(str(metadata.get("python_version", "")).split(".")[:2]))
    if metadata and (here[0] != there[0] or here[1] != there[1]):
        raise UserError(
            f"--address {address}: the cluster runs Ray {there[0]} on Python {there[1]}, this driver Ray "
            f"{here[0]} on Python {here[1]}; install the cluster's versions here (pip install "
            f"ray[tune]=={there[0]}) or start the cluster with this driver's"
        )
    from ray._private.services import get_node_ip_address

    mine = get_node_ip_address(address)
    if alive and mine not in alive:
        raise UserError(
            f"--address {address}: this machine ({mine}) is not a node of the cluster (its nodes: "
            f"{', '.join(sorted(set(alive)))}); run the search on a node, give the address `ray start` "
            "printed, or connect from outside through Ray Client (ray://HEAD:10001)"
        )
    return token


def connect(address: str, level: int, verbose: bool) -> None:
    """``ray.init`` at a cluster address, after the probe; what still fails is one line."""
    import ray

    client = address.startswith("ray://")
    if address != "auto" and not client:
        probe(address)

    def init() -> Any:
        return ray.init(address=address, logging_level=level, log_to_driver=verbose)

    with contextlib.nullcontext() if verbose else _quiet_stderr():
        finished, answer = in_thread(init, 6.0)
    if not finished:
        raise UserError(
            f"--address {address}: no Ray {'client server' if client else 'cluster'} answered within 6 s"
            + ("; give the Ray Client port of the head (default 10001)" if client else "")
        )
    if isinstance(answer, Exception):
        text = first_line(answer)
        if "Version mismatch" in str(answer) or "version" in text.lower():
            raise UserError(f"--address {address}: Ray or Python versions differ from the cluster's ({text})")
        if type(answer).__name__ == "AuthenticationError" or "Unauthenticated" in str(answer):
            raise UserError(f"--address {address}: the cluster refused this driver's token; {TOKEN_HELP}")
        raise UserError(f"--address {address}: cannot connect ({text})")
