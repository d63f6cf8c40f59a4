"""The rules that protect a sweep directory: made once, never overwritten or mixed with
another spec, refused before Ray starts when it cannot take checkpoints. Its layout (file
names, records) is analysis/layout.py's; the names are re-exported here for the writers. A
sweep directory may be a path or a bucket URI (layout.sweep_path)."""
from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import yaml

from gansweep.analysis.layout import (
    EVALUATORS,
    META,
    OPTUNA_DB,
    SPEC,
    SPEC_SHA1,
    STUDY_STORAGE,
    TRIALS,
    TUNE,
    UriPath,
    sweep_path,
    write_file,
)
from gansweep.jobs.spec import LEGACY, SweepSpec, parse_spec
from gansweep.trainers.errors import ConfigError

__all__ = ["EVALUATORS", "META", "OPTUNA_DB", "SPEC", "TRIALS", "TUNE", "check_writable",
           "create", "open_existing", "write_meta"]


def create(spec: SweepSpec) -> dict:
    """Make a new sweep directory; refuse one that exists (never overwrite or mix sweeps)."""
    root = sweep_path(spec.sweep_dir)
    if _reachable(root, "exists") and any(root.iterdir()):
        raise ConfigError(f"sweep directory {root} already exists; continue it with "
                          f"`gansweep resume {root}`, or change `name` in the spec to start a "
                          "new sweep")
    root.mkdir(parents=True, exist_ok=True)
    frozen = yaml.safe_dump(spec.to_dict(), sort_keys=False)
    (root / SPEC).write_text(frozen)
    meta = {"study_name": f"{spec.name}-{uuid.uuid4().hex[:8]}",
            "spec_fingerprint": spec.fingerprint(), SPEC_SHA1: _sha1(frozen),
            "created": time.time(), "runs": []}
    if spec.study:  # without its password (jobs/study.py); absent: SQLite in the directory
        meta[STUDY_STORAGE] = spec.study
    write_meta(root, meta)
    return meta


def open_existing(sweep_dir: str | Path, spec_path: str | None = None) -> tuple[SweepSpec, dict]:
    """Load a sweep's frozen spec and metadata; refuse a directory that is not a sweep or
    whose spec was edited after submission."""
    root = sweep_path(sweep_dir)
    if not (_reachable(root / SPEC, "is_file") and (root / META).is_file()):
        raise ConfigError(f"{root} is not a gansweep sweep directory (no {SPEC} / {META}); "
                          "start a sweep with `gansweep submit SPEC`")
    try:
        raw = yaml.safe_load((root / SPEC).read_text())
        if isinstance(raw, dict):  # made before a key existed: what its absence meant then
            raw = {**LEGACY, **raw}
        spec = parse_spec(raw, str(root / SPEC))
        meta = json.loads((root / META).read_text())
    except (yaml.YAMLError, json.JSONDecodeError, OSError) as exc:
        raise ConfigError(f"{root}: sweep files are unreadable ({exc})") from None
    if spec.fingerprint() != meta.get("spec_fingerprint"):
        raise ConfigError(f"{root / SPEC} was edited after submission; restore it (the "
                          "trials already stored were trained under the original), or "
                          "submit the new spec as a new sweep with another name")
    if spec_path is not None:
        from gansweep.jobs.spec import load_spec

        other = load_spec(spec_path)
        if other.fingerprint() != spec.fingerprint():
            raise ConfigError(f"{spec_path} differs from the spec {root} was submitted with; "
                              "submit it under another name to start a new sweep")
    return spec, meta


def _sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def read_frozen(sweep_dir: str | Path) -> tuple[dict, dict]:
    """The frozen spec as written (a plain mapping) and the metadata, for readers that run
    often (`gansweep status` every second): when spec.yaml is byte for byte what was written
    at submission, it is not validated again, which would import torch and Ray. Anything else
    (an edit, a sweep made before the digest was recorded) goes through `open_existing`."""
    root = sweep_path(sweep_dir)
    try:
        text, meta = (root / SPEC).read_text(), json.loads((root / META).read_text())
    except (OSError, json.JSONDecodeError):
        text, meta = None, {}
    if text is not None and meta.get(SPEC_SHA1) == _sha1(text):
        return yaml.safe_load(text), meta
    spec, meta = open_existing(root)
    return spec.to_dict(), meta


MIN_FREE_BYTES = 200 * 2**20


def _reachable(path, test: str) -> bool:
    """path.exists() or path.is_file(); an unreachable bucket (endpoint, credentials) is said
    so in one message."""
    try:
        return getattr(path, test)()
    except OSError as exc:
        raise ConfigError(f"storage: cannot reach {path} ({exc}); check the bucket and the "
                          "AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY "
                          "environment of this machine") from None


def check_writable(root: Path | UriPath) -> None:
    """Refuse, before Ray starts, a sweep directory that cannot take checkpoints."""
    import os
    import shutil

    probe = root / f".write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"sweep directory {root} is not writable "
                          f"({exc.strerror or exc}); free the disk or fix its permissions / "
                          "mount or bucket credentials, then run the command again. Nothing "
                          "stored there was changed.") from None
    if isinstance(root, UriPath):  # an object store does not fill up
        return
    free = shutil.disk_usage(root).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(f"only {free / 2**20:.0f} MiB free under {root}; checkpoints need "
                          f"at least {MIN_FREE_BYTES / 2**20:.0f} MiB. Free some space and run "
                          "the command again.")


def write_meta(root: Path | UriPath, meta: dict) -> None:
    write_file(root / META, json.dumps(meta, indent=1).encode())


def spent_seconds(meta: dict) -> float:
    """Wall-clock of the driver runs so far (each up to the last time it was seen alive)."""
    return float(sum(max(0.0, r.get("seen", r["started"]) - r["started"])
                     for r in meta.get("runs", [])))
