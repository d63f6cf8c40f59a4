"""One driver per sweep directory: SWEEP_DIR/driver.lock.

`submit`, `resume` and `rerun` take the lock before they write anything. It is a file created
exclusively (O_CREAT|O_EXCL, atomic on local filesystems and on NFS v3 and later) that holds
the driver's host, pid, start time and a heartbeat the driver rewrites every
`liveness.HEARTBEAT_S`. A second driver is refused, naming the holder. A holder that died
(SIGKILL, a lost node) does not block forever: once `liveness.why_dead` says so, the next
driver takes the lock over and says why; `--force` takes it whatever the holder's state.

Taking over renames the dead holder's file aside (atomic) and checks that what it moved is the
record it judged dead: two drivers racing to take over cannot both win, and one that moved a
newer holder's lock puts it back.

In a bucket (s3://, gs://) an object cannot be created exclusively through pyarrow, so the
nearest equivalent is used: write the lock object, wait, read it back, and hold it only if it
is still ours (two drivers starting within the same second could both pass; `status` shows
the holder). Use a shared filesystem where that matters.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from gansweep.analysis import durable, liveness
from gansweep.analysis.layout import UriPath, filesystem
from gansweep.trainers.errors import ConfigError

LOCK = "driver.lock"
SETTLE_S = 2.0  # a bucket: how long a written lock must stay ours before it counts


class SweepBusy(ConfigError):
    """Another live driver holds the sweep."""


def when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def describe(holder: dict) -> str:
    if not holder:  # a lock file cut short: its writer died while creating it
        return "a driver whose lock record is unreadable"
    return (f"{holder.get('host', '?')}:{holder.get('pid', '?')} "
            f"({holder.get('command', 'a driver')}) since {when(holder.get('started', 0))}")


class DriverLock:
    """Held from `acquire()` to `release()`; a thread keeps its heartbeat fresh."""

    def __init__(self, root: Path | UriPath, command: str, force: bool = False, log=print):
        self.root, self.command, self.force, self.log = root, command, force, log
        self.fs, self.path = filesystem(root.uri if isinstance(root, UriPath) else root)
        self.path = f"{self.path}/{LOCK}"
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.record: dict | None = None
        self.lost: str | None = None  # set when another driver took the lock from us
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # ---- taking it ------------------------------------------------------------------------
    def acquire(self) -> DriverLock:
        now = time.time()
        record = {**liveness.me(), "command": self.command, "token": uuid.uuid4().hex,
                  "started": now, "heartbeat": now}
        for _ in range(10):
            if self._create(record):
                self.record = record
                self._beat = threading.Thread(target=self._beating, daemon=True,
                                              name="gansweep-driver-lock")
                self._beat.start()
                return self
            holder, beat = self.holder()
            if holder is None and beat is None:
                continue  # released between our try and our look: try again
            reason = "--force" if self.force else liveness.why_dead(holder or {}, beat)
            if reason is None:
                raise SweepBusy(
                    f"sweep {self.root} is being run by {describe(holder or {})}; wait for "
                    f"it, or `gansweep resume --force {self.root}` once you are sure it is "
                    "dead")
            if self._take_over(holder):
                self.log(f"[gansweep] taking over sweep {self.root} from "
                         f"{describe(holder or {})}: {reason}")
        raise SweepBusy(f"sweep {self.root}: its driver lock keeps changing hands; another "
                        "driver is starting on it. Wait and try again.")

    def holder(self) -> tuple[dict | None, float | None]:
        """The current holder's record and heartbeat (a torn record: None and the file's
        modification time, so a holder killed mid-write is judged by when it wrote)."""
        data = durable.read(self.fs, self.path)
        if data is None:
            return None, None
        try:
            holder = json.loads(data)
            return holder, float(holder["heartbeat"])
        except (ValueError, KeyError, TypeError):
            info = self.fs.get_file_info(self.path)
            mtime = info.mtime.timestamp() if info.mtime is not None else None
            return {}, mtime

    def _create(self, record: dict) -> bool:
        data = json.dumps(record).encode()
        if not self.local:
            if self.fs.get_file_info(self.path).type != pafs.FileType.NotFound:
                return False
            durable.write(self.fs, self.path, data)
            time.sleep(SETTLE_S)
            mine, _ = self.holder()
            return bool(mine) and mine.get("token") == record["token"]
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        durable.fsync_dir(os.path.dirname(self.path))
        return True

    def _take_over(self, judged: dict | None) -> bool:
        """Move the dead holder's lock aside; False when someone else moved it first."""
        if not self.local:
            try:
                self.fs.delete_file(self.path)
            except FileNotFoundError:
                return False
            return True
        aside = f"{self.path}.dead-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        try:
            moved = json.loads(Path(aside).read_bytes())
        except ValueError:
            moved = {}
        if (judged or {}).get("token") != moved.get("token"):
            try:  # a newer holder's lock: put it back unless another has taken its place
                os.link(aside, self.path)
            except FileExistsError:
                pass
            os.unlink(aside)
            return False
        os.unlink(aside)
        return True

    # ---- holding it -----------------------------------------------------------------------
    def _beating(self) -> None:
        while not self._stop.wait(liveness.HEARTBEAT_S):
            try:
                holder, _ = self.holder()
                if not holder or holder.get("token") != self.record["token"]:
                    self.lost = (f"another driver took over sweep {self.root} "
                                 f"({describe(holder or {})})")
                    self.log(f"[gansweep] warning: {self.lost}; this driver should stop")
                    return
                self.record["heartbeat"] = time.time()
                durable.write(self.fs, self.path, json.dumps(self.record).encode())
            except OSError as exc:  # a storage hiccup: the next beat tries again
                self.log(f"[gansweep] warning: driver heartbeat not written ({exc})")

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if self.record is None or self.lost:
            return
        holder, _ = self.holder()
        if holder and holder.get("token") == self.record["token"]:
            self.fs.delete_file(self.path)
        self.record = None

    def __enter__(self) -> DriverLock:
        return self if self.record is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
