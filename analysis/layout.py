"""The sweep directory: its file names, its records and the trial store that reads and writes
them. The one owner of the layout: `jobs` writes through it, `analysis` reads through it.

    SWEEP_DIR/spec.yaml    the validated spec, frozen at submission
    SWEEP_DIR/sweep.json   study name, spec fingerprint, driver runs; a rerun's record
    SWEEP_DIR/optuna.db    the Optuna study (sqlite), readable live
    SWEEP_DIR/tune/        one Ray Tune experiment per driver run (run-001, ...)
    SWEEP_DIR/evaluators/  the image evaluator, trained once by the driver
    SWEEP_DIR/trials/KEY/  per configuration and seed:
        config.json        what it trains (trainer, dataset, seed, steps, configuration)
        state.pt           checkpoint of its last report (trainer, history, stopping state)
        metrics.csv        one row per report
        result.json        how it ended (absent while it runs or after an interruption)
        samples.npy        what a finished run leaves: samples in data space, or
        weights.npy        a map's weights (the trainer's OUTPUT names which)
        lease.json         which driver run and trial trains it now
    SWEEP_DIR-rerun/       `gansweep rerun`: a sweep of its own beside the original

KEY is a hash of (trainer, dataset, configuration, seed, steps): Ray Tune re-creates trials
begun after its last experiment snapshot under new ids when a driver is killed hard, and a
re-suggested configuration must find its own checkpoint or stored result whatever trial id it
runs under. Paths may be local, a shared filesystem, or any URI pyarrow understands (s3://...).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

SPEC, META, OPTUNA_DB, TUNE, TRIALS, EVALUATORS = (
    "spec.yaml", "sweep.json", "optuna.db", "tune", "trials", "evaluators")
CONFIG, STATE, METRICS, RESULT, LEASE = (
    "config.json", "state.pt", "metrics.csv", "result.json", "lease.json")
RERUN_SUFFIX = "-rerun"

# How a configuration ended (result.json's stop_reason); readers add UNFINISHED for those
# without a result, and a report that is not a trial's last says RUNNING.
COMPLETED, COLLAPSED, DIVERGED, ASHA, FAILED = "completed", "collapsed", "diverged", "asha", \
    "failed"
ENDED = (COMPLETED, COLLAPSED, DIVERGED, ASHA, FAILED)
STOPPED_EARLY = (COLLAPSED, DIVERGED, ASHA)  # ended before their planned steps on purpose
UNFINISHED, RUNNING = "unfinished", "running"
FLAGS = (COLLAPSED, DIVERGED)  # boolean columns of a report row


def output_file(kind: str) -> str:
    """The file a finished run leaves, for a trainer's OUTPUT kind ("samples", "weights")."""
    return f"{kind}.npy"


OUTPUT_FILES = tuple(output_file(k) for k in ("samples", "weights"))


def rerun_dir(root: Path) -> Path:
    return root.parent / (root.name + RERUN_SUFFIX)


def is_sweep_dir(root: str | Path) -> bool:
    root = Path(root)
    return (root / SPEC).is_file() and (root / META).is_file()


def stop_reason(row: dict) -> str | None:
    """The reason a report row ends its run, from its flags (None: it does not)."""
    return DIVERGED if row.get("diverged") else COLLAPSED if row.get("collapsed") else None


def trial_key(trainer: str, dataset: Any, config: dict, seed: int, steps: int) -> str:
    blob = json.dumps({"trainer": trainer, "dataset": dataset, "config": config, "seed": seed,
                       "steps": steps}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def config_key(trainer: str, dataset: Any, config: dict, steps: int) -> str:
    """A configuration whatever its seed: what its runs under several seeds share."""
    return trial_key(trainer, dataset, config, "any", steps)


def metrics_csv(history: list[dict]) -> str:
    """One row per report; columns are the union of keys in first-seen order."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": strict JSON readers choke on bare NaN
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class TrialStore:
    """SWEEP_DIR/trials: one folder per configuration key; every write is atomic."""

    def __init__(self, root: str):
        self.uri = root.rstrip("/")
        if "://" in self.uri:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(self.uri)

    @classmethod
    def of(cls, sweep_dir: str | Path) -> TrialStore:
        return cls(f"{str(sweep_dir).rstrip('/')}/{TRIALS}")

    def path(self, key: str, name: str = "") -> str:
        return "/".join(p for p in (self.root, key, name) if p)

    def keys(self) -> list[str]:
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return []
        sel = pafs.FileSelector(self.root, recursive=False)
        return sorted(i.base_name for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.Directory)

    def exists(self, key: str, name: str) -> bool:
        return self.fs.get_file_info(self.path(key, name)).type == pafs.FileType.File

    def read(self, key: str, name: str) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.path(key, name)) as f:
                return f.read()
        except (FileNotFoundError, OSError):
            return None

    def write(self, key: str, name: str, data: bytes) -> None:
        """Write then rename, so a kill mid-write never leaves a torn file behind."""
        self.fs.create_dir(self.path(key), recursive=True)
        tmp = self.path(key, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, self.path(key, name))

    def move_aside(self, key: str, name: str, suffix: str) -> str:
        """Rename a file out of the way (kept, never overwritten); returns its new name."""
        aside = f"{name}.{suffix}-{int(time.time())}"
        self.fs.move(self.path(key, name), self.path(key, aside))
        return aside

    def read_json(self, key: str, name: str) -> dict | None:
        data = self.read(key, name)
        return None if data is None else json.loads(data)

    def write_json(self, key: str, name: str, obj: dict) -> None:
        self.write(key, name, json.dumps(_json_safe(obj), indent=1, default=str).encode())

    def read_torch(self, key: str, name: str):
        import torch

        data = self.read(key, name)
        if data is None:
            return None
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)

    def write_torch(self, key: str, name: str, obj: Any) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        self.write(key, name, buf.getvalue())

    def write_array(self, key: str, name: str, array) -> None:
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, array)
        self.write(key, name, buf.getvalue())

    # ---- records --------------------------------------------------------------------------
    def result(self, key: str) -> dict | None:
        return self.read_json(key, RESULT)

    def has_result(self, key: str) -> bool:
        return self.exists(key, RESULT)

    def write_result(self, key: str, reason: str, step: int, objective: float | None,
                     final: dict, trial_id: str, **extra: Any) -> None:
        """result.json: how the configuration ended. The one writer of this record, whether
        the trial ended itself or was ended from outside (ASHA, failure)."""
        self.write_json(key, RESULT, {
            "key": key, "stop_reason": reason, "stop_step": step, "objective": objective,
            "final": final, "trial_id": trial_id, "time_s": final.get("time_s"),
            **extra, "finished": time.time()})

    # ---- who is training a configuration right now ------------------------------------------
    def claim(self, key: str, run_id: str, trial_id: str, wait_s: float = 3600.0) -> bool:
        """Take the lease on `key` for this trial.

        A lease from another driver run is stale (that driver is gone) and is taken over. A
        live lease of another trial in this run means the searcher suggested the same
        configuration twice: wait for that trial's result instead of training it again.
        Returns False when a result appeared while waiting.
        """
        deadline = time.time() + wait_s
        while True:
            lease = self.read_json(key, LEASE)
            if (lease is None or lease.get("run_id") != run_id
                    or lease.get("trial_id") == trial_id):
                self.write_json(key, LEASE, {"run_id": run_id, "trial_id": trial_id,
                                             "pid": os.getpid(), "time": time.time()})
                return True
            if self.has_result(key):
                return False
            if time.time() > deadline:
                raise TimeoutError(f"trial {lease.get('trial_id')} holds configuration {key} "
                                   f"for more than {wait_s:.0f} s")
            time.sleep(1.0)
