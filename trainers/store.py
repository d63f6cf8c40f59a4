"""The sweep's trial store: checkpoints and final results keyed by a hash of
(trainer, dataset, configuration, seed, steps), under SWEEP_DIR/trials/KEY/.

Ray Tune re-creates trials begun after its last experiment snapshot under new ids when the
driver is killed hard; keying by configuration lets a re-suggested configuration resume from
its own checkpoint, or return its stored result at once, whichever trial id it runs under.
Paths may be local, a shared filesystem, or any URI pyarrow understands (s3://...).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import uuid
from typing import Any

import pyarrow.fs as pafs


def trial_key(trainer: str, dataset: Any, config: dict, seed: int, steps: int) -> str:
    blob = json.dumps({"trainer": trainer, "dataset": dataset, "config": config, "seed": seed,
                       "steps": steps}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": strict JSON readers choke on bare NaN
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class TrialStore:
    def __init__(self, root: str):
        self.uri = root.rstrip("/")
        if "://" in self.uri:
            self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(self.uri)

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
            lease = self.read_json(key, "lease.json")
            if (lease is None or lease.get("run_id") != run_id
                    or lease.get("trial_id") == trial_id):
                self.write_json(key, "lease.json", {"run_id": run_id, "trial_id": trial_id,
                                                    "pid": os.getpid(), "time": time.time()})
                return True
            if self.exists(key, "result.json"):
                return False
            if time.time() > deadline:
                raise TimeoutError(f"trial {lease.get('trial_id')} holds configuration {key} "
                                   f"for more than {wait_s:.0f} s")
            time.sleep(1.0)
