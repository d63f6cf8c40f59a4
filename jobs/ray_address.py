"""The Ray cluster a sweep joins (`--address`, else $RAY_ADDRESS), reached before anything is
made: an unreachable address otherwise leaves `ray.init` retrying for minutes and ending in a
stack trace, with the sweep directory already created."""
from __future__ import annotations

import os
import socket

from gansweep.trainers.errors import ConfigError

CONNECT_TIMEOUT_S = 5.0
DEFAULT_PORTS = {"ray": 10001, "": 6379}  # Ray Client's port; the GCS's


def resolve(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


def endpoint(address: str) -> tuple[str, int]:
    """(host, port) that `address` connects to: host:port is the head's GCS, ray://host:port
    Ray Client's server, each with Ray's default port when none is written."""
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "", address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep:
        host, port = port, str(DEFAULT_PORTS.get(scheme, DEFAULT_PORTS[""]))
    if not host or not port.isdigit():
        raise ConfigError(f"Ray address {address!r}: write host:port (the head's GCS, "
                          "port 6379 by default) or ray://host:port (Ray Client, 10001)")
    return host, int(port)


def check_reachable(address: str | None) -> None:
    """Raise ConfigError when the cluster's address does not accept a connection. `auto`
    (a Ray started on this machine, found by Ray itself) and `local` are left to Ray."""
    origin = "--address" if address else "RAY_ADDRESS"  # --address wins when both are set
    address = resolve(address)
    if not address or address in ("auto", "local"):
        return
    host, port = endpoint(address)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({origin}): {exc or type(exc).__name__}"
            ". Start it (`ray up cluster.yaml`, or `ray start --head` on the head node; "
            f"`ray status` there shows its address), or drop {origin} to run on a local Ray"
        ) from None
