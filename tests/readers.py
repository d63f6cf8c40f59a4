"""The readers of a running sweep, each a real process: optuna-dashboard serving the study (its
JSON API fetched over HTTP), `gansweep status --json` every second, and `gansweep report` in a
loop. Each loop records what it saw and every failure, rather than raising, so a test (and
benchmarks/readers.py) can judge them all at the end."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT
from tests.servers import free_port

LOCKED = "database is locked"


@dataclass
class Readers:
    sweep: str  # the sweep directory (a path or a URI)
    study_url: str  # what the dashboard opens (no password: PGPASSWORD in env)
    study_name: str
    out: Path  # where the reports go
    env: dict = field(default_factory=dict)
    cpus: set[int] | None = None  # pin the readers to these cores (the benchmark)
    statuses: list[tuple[float, dict]] = field(default_factory=list)
    reports: list[dict] = field(default_factory=list)  # per report: rows read back
    dashboard_reads: list[tuple[int, int]] = field(default_factory=list)  # trials, complete
    failures: list[str] = field(default_factory=list)
    timings: list[tuple[str, float, float]] = field(default_factory=list)  # (command, start, s)

    def _popen_kw(self) -> dict:
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.env}
        cpus = self.cpus
        return {"cwd": ROOT, "env": env,
                "preexec_fn": (lambda: os.sched_setaffinity(0, cpus)) if cpus else None}

    def _cli(self, *args: str) -> subprocess.CompletedProcess:
        t0 = time.time()
        proc = subprocess.run([sys.executable, "-m", "gansweep", *args], capture_output=True,
                              text=True, timeout=300, **self._popen_kw())
        self.timings.append((args[0], t0, time.time() - t0))
        return proc

    # ---- the three readers ------------------------------------------------------------------
    def _status_loop(self) -> None:
        while not self._stop.is_set():
            proc = self._cli("status", self.sweep, "--json")
            if proc.returncode or LOCKED in proc.stderr:
                self.failures.append(f"status ({proc.returncode}): {proc.stderr[-800:]}")
            else:
                try:
                    self.statuses.append((time.time(), json.loads(proc.stdout)))
                except json.JSONDecodeError as exc:
                    self.failures.append(f"status printed no JSON ({exc}): {proc.stdout[:300]}")
            self._stop.wait(1.0)

    def _report_loop(self) -> None:
        while not self._stop.is_set():
            proc = self._cli("report", self.sweep, "--out", str(self.out))
            if proc.returncode or LOCKED in proc.stderr + proc.stdout:
                self.failures.append(f"report ({proc.returncode}): {proc.stderr[-800:]}")
                continue
            with open(self.out / "trials.csv", newline="") as f:
                self.reports.append({r["key"]: r for r in csv.DictReader(f)})

    def _dashboard_loop(self, study_ready) -> None:
        # Started once the sweep has made its study: a dashboard opened on a file that is not
        # there yet would make it, racing the sweep to create the same tables.
        while not study_ready() and not self._stop.wait(0.2):
            pass
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        self._dashboard = subprocess.Popen(
            [sys.executable, "-c", "from optuna_dashboard._cli import main; main()",
             self.study_url, "--host", "127.0.0.1", "--port", str(port)],
            stdout=self._log, stderr=subprocess.STDOUT, **self._popen_kw())
        study_id = None
        while not self._stop.is_set():
            try:
                if study_id is None:
                    with urllib.request.urlopen(url + "/api/studies", timeout=30) as r:
                        studies = json.load(r)["study_summaries"]
                    study_id = next((s["study_id"] for s in studies
                                     if s["study_name"] == self.study_name), None)
                else:
                    with urllib.request.urlopen(f"{url}/api/studies/{study_id}",
                                                timeout=30) as r:
                        trials = json.load(r)["trials"]
                    self.dashboard_reads.append(
                        (len(trials), sum(t["state"] == "Complete" for t in trials)))
            except urllib.error.HTTPError as exc:  # a 500 is a failure of the dashboard
                self.failures.append(f"dashboard HTTP {exc.code}: {exc.read()[:500]!r}")
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass  # still starting up
            except (KeyError, ValueError) as exc:  # JSON the dashboard should not serve
                self.failures.append(f"dashboard answered unexpectedly: {exc!r}")
            self._stop.wait(0.5)

    # ---- start and stop ----------------------------------------------------------------------
    def start(self, study_ready=lambda: True) -> Readers:
        self._stop = threading.Event()
        self.out.mkdir(parents=True, exist_ok=True)
        self._log = open(self.out.parent / f"dashboard-{self.out.name}.log", "w+")
        self._dashboard = None
        self._threads = [threading.Thread(target=t, args=a, daemon=True) for t, a in (
            (self._status_loop, ()), (self._report_loop, ()),
            (self._dashboard_loop, (study_ready,)))]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> Readers:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=300)
        if self._dashboard is not None:
            self._dashboard.terminate()
            self._dashboard.wait(timeout=30)
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        if LOCKED in log or "Traceback" in log:
            self.failures.append(f"dashboard log: {log[-1500:]}")
        return self
