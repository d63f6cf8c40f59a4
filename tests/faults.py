"""Helpers for the fault tests: drivers in their own processes, killed with real signals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from tests.conftest import ROOT


def write_spec(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


class Driver:
    """`gansweep submit|resume` (or Python `code` that drives Ray, such as a benchmark) in a
    fresh process with its own Ray temp dir, so whatever a hard kill leaves behind can be
    found and cleared."""

    def __init__(self, *args: str, log: Path, code: str | None = None,
                 cwd: Path = ROOT, env: dict | None = None):
        self.tmp = Path("/tmp") / f"gsk{uuid.uuid4().hex[:6]}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(self.tmp),
               "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = log
        argv = ["-c", code] if code is not None else ["-m", "gansweep", *args]
        self.proc = subprocess.Popen([sys.executable, *argv], cwd=cwd, env=env,
                                     stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self, sig=signal.SIGKILL, group: bool = False) -> None:
        """`group`: the driver's whole session too (a driver whose children would otherwise
        outlive it, such as a benchmark's worker pool)."""
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=120)
        if sig == signal.SIGKILL:
            self.clear()

    def wait(self, timeout: float = 400) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.clear()
        return rc

    def clear(self) -> None:
        """Ray's fate-sharing ends the trials with the driver; idle agents may linger. The
        wait of a second lets fate-sharing finish: a worker whose command line lacks the temp dir
        could otherwise still write after the caller's snapshot (a bucket test failed so)."""
        time.sleep(1)
        subprocess.run(["pkill", "-9", "-f", str(self.tmp)], check=False)

    def output(self) -> str:
        return self.log.read_text()


def wait_for(cond, what: str, timeout: float = 300, driver: Driver | None = None,
             poll: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        if driver is not None and driver.proc.poll() is not None:
            raise AssertionError(f"driver exited ({driver.proc.returncode}) before {what}:\n"
                                 + driver.output()[-3000:])
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")


def results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text())
            for p in sorted(sweep.glob("trials/*/result.json"))}


def store_steps(sweep: Path) -> dict[str, list[int]]:
    """Steps in each configuration's metrics.csv (its history, as checkpointed)."""
    out = {}
    for p in sweep.glob("trials/*/metrics.csv"):
        lines = p.read_text().splitlines()[1:]
        out[p.parent.name] = [int(float(line.split(",")[0])) for line in lines]
    return out


def running(sweep: Path) -> dict[str, int]:
    """Configurations with a checkpointed report and no result: key -> last step."""
    done = set(results(sweep))
    return {k: v[-1] for k, v in store_steps(sweep).items() if v and k not in done}


def tune_reports(sweep: Path) -> list[tuple[str, int]]:
    """(configuration, step) of every report Ray Tune recorded, across all driver runs;
    stored results handed back at once ('reused') are not training and are left out."""
    rows = []
    for p in sweep.glob("tune/*/trial_*/result.json"):
        for line in p.read_text().splitlines():
            r = json.loads(line)
            if not r.get("reused") and "key" in r:
                rows.append((r["key"], int(r["step"])))
    return rows


# ---- the same records read through the trial store, for a sweep in a bucket ----------------

def store_results(root) -> dict[str, dict]:
    """result.json of each run that has one, as written (compared with local copies)."""
    from gansweep.analysis.layout import RESULT, TrialStore

    store = TrialStore.of(root)
    return {k: r for k in store.keys() if (r := store.read_json(k, RESULT)) is not None}


def store_histories(root) -> dict[str, list[int]]:
    """Steps in each configuration's metrics.csv, read through the trial store."""
    from gansweep.analysis.layout import METRICS, TrialStore

    store = TrialStore.of(root)
    out = {}
    for key in store.keys():
        data = store.read(key, METRICS)
        if data:
            out[key] = [int(float(line.split(",")[0]))
                        for line in data.decode().splitlines()[1:]]
    return out


def download(root, dest: Path) -> Path:
    """A local copy of a sweep directory in a bucket, to read with the helpers above."""
    import pyarrow.fs as pafs

    from gansweep.analysis.layout import filesystem

    fs, path = filesystem(str(root))
    pafs.copy_files(path, str(dest), source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem())
    return dest


class _Plant:
    """Pickles as a call of open(marker, "w"): a full unpickler (torch.load with
    weights_only=False) creates the marker file, i.e. runs code the file carries."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def planted_checkpoint(marker: Path) -> bytes:
    """A file shaped like a checkpoint that would run code when loaded in full."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"trainer": _Plant(marker), "history": [], "detector": {}}, buf)
    return buf.getvalue()


def runs_code_when_fully_unpickled(data: bytes, marker: Path) -> bool:
    """The control: loading it the old way (weights_only=False) does create the marker."""
    import io

    import torch

    torch.load(io.BytesIO(data), weights_only=False)
    made = marker.exists()
    marker.unlink(missing_ok=True)
    return made
