"""Ray: our own local instance, or a cluster reached at an address."""

from __future__ import annotations

import logging
import socket
import tempfile
from typing import TYPE_CHECKING

from search.errors import UserError

if TYPE_CHECKING:
    from search.driver.plan import RunPlan


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail in seconds, not minutes, when a cluster address does not answer."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--address {address!r}: expected auto, host:port or ray://host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise UserError(f"--address {address}: cannot connect ({exc.strerror or exc})") from None


def start_ray(plan: RunPlan) -> None:
    import ray

    level = logging.INFO if plan.verbose else logging.ERROR
    if plan.address is None:
        # Our own local instance: never attach to a cluster found on this machine. It binds
        # to 127.0.0.1 through the environment run_trials sets before ray is imported (Ray
        # maps an explicit 127.0.0.1 node address back to the machine's reachable IP).
        tmp = tempfile.mkdtemp(prefix="rs-ray-", dir="/tmp")
        ray.init(
            address="local",
            include_dashboard=False,
            _temp_dir=tmp,
            logging_level=level,
            log_to_driver=plan.verbose,
        )
    else:
        ray.init(address=plan.address, logging_level=level, log_to_driver=plan.verbose)
