"""The rules that protect a sweep directory: made once, never overwritten or mixed with
another spec, refused before Ray starts when it cannot take checkpoints. Its layout (file
names, records) is analysis/layout.py's; the names are re-exported here for the writers. A
sweep directory may be a path or a bucket URI (layout.sweep_path)."""
from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import yaml

from gansweep.analysis.layout import (
    EVALUATORS,
    META,
    OPTUNA_DB,
    SPEC,
    TRIALS,
    TUNE,
    UriPath,
    read_meta,
    sweep_path,
    write_file,
    write_meta,
)
from gansweep.analysis.lock import LOCK, DriverLock
from gansweep.analysis.records import SweepMeta
from gansweep.jobs.spec import LEGACY, SweepSpec, parse_spec
from gansweep.trainers.errors import ConfigError

__all__ = ["EVALUATORS", "META", "OPTUNA_DB", "SPEC", "TRIALS", "TUNE", "check_writable",
           "create", "lock", "open_existing"]


def create(spec: SweepSpec, log=print) -> tuple[SweepMeta, DriverLock]:
    """Make a new sweep directory and hold its driver lock; refuse one that exists (never
    overwrite or mix sweeps). Exclusive: of two drivers creating the same sweep at once, one
    gets the lock and makes it, the other is refused. The caller releases the lock."""
    root = sweep_path(spec.sweep_dir)
    if _reachable(root / SPEC, "exists"):
        raise _exists(root)
    root.mkdir(parents=True, exist_ok=True)
    lock = DriverLock(root, "gansweep submit", log=log).acquire()
    try:
        if any(p.name != LOCK for p in root.iterdir()):
            raise _exists(root)
        frozen = yaml.safe_dump(spec.to_dict(), sort_keys=False)
        # The study's URL without its password (jobs/study.py); none: SQLite in the directory
        meta = SweepMeta(study_name=f"{spec.name}-{uuid.uuid4().hex[:8]}",
                         spec_fingerprint=spec.fingerprint(), spec_sha1=_sha1(frozen),
                         created=time.time(), study_storage=spec.study or None)
        write_file(root / SPEC, frozen.encode())
        write_meta(root, meta)
    except BaseException:
        lock.release()
        raise
    return meta, lock


def _exists(root) -> ConfigError:
    return ConfigError(f"sweep directory {root} already exists; continue it with "
                       f"`gansweep resume {root}`, or change `name` in the spec to start a "
                       "new sweep")


def lock(root: Path | UriPath, command: str, force: bool = False, log=print
         ) -> tuple[SweepSpec, SweepMeta, DriverLock]:
    """Take an existing sweep's driver lock, then read its spec and metadata under it (the
    previous driver may have written them until the moment it let go)."""
    open_existing(root)  # not a sweep, or an edited spec: refused before any lock file
    held = DriverLock(root, command, force=force, log=log).acquire()
    try:
        spec, meta = open_existing(root)
    except BaseException:
        held.release()
        raise
    return spec, meta, held


def open_existing(sweep_dir: str | Path, spec_path: str | None = None
                  ) -> tuple[SweepSpec, SweepMeta]:
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
        meta = read_meta(root)
    except (yaml.YAMLError, ValueError, OSError) as exc:
        raise ConfigError(f"{root}: sweep files are unreadable ({exc})") from None
    if spec.fingerprint() != meta.spec_fingerprint:
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


def read_frozen(sweep_dir: str | Path) -> tuple[dict, SweepMeta]:
    """The frozen spec as written (a plain mapping) and the metadata, for readers that run
    often (`gansweep status` every second): when spec.yaml is byte for byte what was written
    at submission, it is not validated again, which would import torch and Ray. Anything else
    (an edit, a sweep made before the digest was recorded) goes through `open_existing`."""
    root = sweep_path(sweep_dir)
    try:
        text, meta = (root / SPEC).read_text(), read_meta(root)
    except (OSError, ValueError):
        text, meta = None, SweepMeta()
    if text is not None and meta.spec_sha1 == _sha1(text):
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


def check_writable(root: Path | UriPath, key: str = "sweep directory",
                   min_free: int = MIN_FREE_BYTES) -> None:
    """Refuse, before anything is made and before Ray starts, a sweep directory (or run
    directory: `key` names it in the message) that cannot take checkpoints: a file in the
    way, a read-only or full filesystem, missing permissions or bucket credentials.

    A directory not made yet is probed in the nearest folder that exists: a probe that made
    the directory itself would leave it behind, and the retry the message suggests would then
    be refused as 'already exists'. An object store has no folders: the probe goes where the
    sweep's objects will (pyarrow's S3 then leaves an empty folder marker, so callers probe
    after every check that could still refuse without writing)."""
    import os
    import shutil

    from gansweep.analysis.layout import WHOLE_OBJECT_STORES

    def unwritable(exc: OSError) -> ConfigError:
        return ConfigError(f"{key}: {where} is not writable ({exc.strerror or exc}); free the "
                           "disk or fix its permissions / mount or bucket credentials, or "
                           "choose another place, then run the command again. Nothing was "
                           "made or changed there.")

    where = root
    if isinstance(root, UriPath):
        if root.fs.type_name not in WHOLE_OBJECT_STORES:
            while not _reachable(where, "exists") and where.parent != where:
                where = where.parent
    else:
        try:
            while not os.path.lexists(where) and where.parent != where:
                where = where.parent
            if not where.is_dir():
                raise ConfigError(f"{key}: {where} is a file, not a directory; give a "
                                  "directory path (one that does not exist yet is made)")
        except OSError as exc:  # a parent we may not look into
            raise unwritable(exc) from None
    probe = where / f".gansweep-write-test-{os.getpid()}"
    try:
        if isinstance(probe, UriPath):
            probe.write_bytes(b"x" * 4096)
            probe.unlink()
        else:
            # fsync: some filesystems (NFS) report a full disk only when data is flushed
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"x" * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
    except OSError as exc:
        raise unwritable(exc) from None
    if isinstance(root, UriPath):  # an object store does not fill up
        return
    free = shutil.disk_usage(where).free
    if free < min_free:
        raise ConfigError(f"{key}: only {free / 2**20:.0f} MiB free under {where}; it needs at "
                          f"least {min_free / 2**20:.0f} MiB. Free some space or choose another "
                          "place, and run the command again.")

