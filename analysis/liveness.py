"""Whether the process that wrote a lock or a lease is still alive: the one rule the driver lock
and the trial leases share.

A holder is dead when it ran on this host and its pid is gone, or now belongs to a process
started at another time (pids are reused); on another host, when its heartbeat is older than
`STALE_S`. A heartbeat is a time the holder wrote (or the modification time of the files it
keeps writing), so a holder on another machine is judged by what it last did here.
"""
from __future__ import annotations

import os
import socket
import time

# A driver beats every HEARTBEAT_S; STALE_S is several beats, so a busy or briefly paused
# holder (a GC pause, a slow shared filesystem) is not taken for dead.
HEARTBEAT_S = 15.0
STALE_S = 120.0


def host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux: /proc/PID/stat field 22), None where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name; 22nd overall


def me() -> dict:
    """What a holder records of itself."""
    pid = os.getpid()
    return {"host": host(), "pid": pid, "pid_start": process_start(pid)}


def why_dead(holder: dict, heartbeat: float | None, now: float | None = None) -> str | None:
    """Why the holder is dead (a phrase for the takeover message), or None while it may live."""
    now = time.time() if now is None else now
    pid = holder.get("pid")
    if holder.get("host") == host() and isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"process {pid} is gone"
        except PermissionError:
            pass  # alive, another user's
        started = holder.get("pid_start")
        if started is not None and process_start(pid) not in (None, started):
            return f"process {pid} is gone (its pid now belongs to another process)"
        return None
    if heartbeat is None or now - heartbeat > STALE_S:
        age = "never" if heartbeat is None else f"{now - heartbeat:.0f} s ago"
        return f"its last heartbeat was {age} (the limit is {STALE_S:.0f} s)"
    return None
