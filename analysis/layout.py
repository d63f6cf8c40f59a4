"""The sweep directory: its file names, and the trial store and sweep.json readers and writers
through which its records (analysis/records.py) are read and written. The one owner of the
layout: `jobs` writes through it, `analysis` reads through it.

    SWEEP_DIR/spec.yaml    the validated spec, frozen at submission
    SWEEP_DIR/sweep.json   study name and where the study lives, spec fingerprint, driver
                           runs; a rerun's record
    SWEEP_DIR/optuna.db    the Optuna study (sqlite, the default), readable live
    SWEEP_DIR/tune/        one Ray Tune experiment per driver run (run-001, ...)
    SWEEP_DIR/evaluators/  the image evaluator, trained once by the driver
    SWEEP_DIR/summary.json every ended run's records, in one file (a cache the driver
                           keeps; the trial store is the truth)
    SWEEP_DIR/trials/KEY/  per configuration and seed:
        config.json        what it trains (trainer, dataset, seed, steps, configuration)
        state.pt           checkpoint of its last report (trainer, history, stopping state)
        metrics.csv        one row per report
        result.json        how it ended (absent while it runs or after an interruption)
        samples.npy        what a finished run leaves: samples in data space, or
        weights.npy        a map's weights (the trainer's OUTPUT names which)
        lease.json         which driver run and trial trains it now
        revived.json       a collapsed run trained on to its end (`early_stop.collapse.revive`):
                           where it paused; its paused result.json is kept beside, renamed
        NAME.damaged-TIME  a record found torn or unreadable, set aside (never read again)
        figures/step-N.png what the run's output looked like at a full score (only when the
                           spec has `tracking:`; the driver logs it to the trackers)
    SWEEP_DIR/damaged/     one note per record set aside: which run, why, what happens to it
    SWEEP_DIR/driver.lock  the driver that holds the sweep (analysis/lock.py)
    SWEEP_DIR/tracking/    per tracker, what was logged to it and what is pending
                           (jobs/tracking/ledger.py)
    SWEEP_DIR-rerun/       `gansweep rerun`: a sweep of its own beside the original

KEY is a hash of (trainer, dataset, configuration, seed, steps): Ray Tune re-creates trials
begun after its last experiment snapshot under new ids when a driver is killed hard, and a
re-suggested configuration must find its own checkpoint or stored result whatever trial id it
runs under.

A sweep directory may be a local path, a shared filesystem path, or a URI pyarrow's filesystems
open (s3://bucket/prefix, gs://...; credentials and endpoint from the environment, as pyarrow
and Ray read them). `sweep_path` gives a `pathlib.Path` for the first two and a `UriPath`, with
the same few methods, for the last, so one body of code reads and writes all three.

Checkpoints are loaded with `torch.load(weights_only=True)`: anyone who can write to a shared
sweep directory could plant a file there, and a full unpickler runs whatever code a pickle
carries. What gansweep saves is tensors and plain values only (a torch.Generator's state is a
uint8 tensor), so nothing needs allow-listing.
"""
from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from gansweep.analysis import durable, liveness
from gansweep.analysis.durable import WHOLE_OBJECT_STORES

# How a run ended is result.json's to say (analysis/records.py); named here too, with the
# layout every reader already imports.
from gansweep.analysis.records import ASHA as ASHA
from gansweep.analysis.records import COLLAPSED, DIVERGED, Revival, RunRecord, RunResult, SweepMeta
from gansweep.analysis.records import COMPLETED as COMPLETED
from gansweep.analysis.records import ENDED as ENDED
from gansweep.analysis.records import FAILED as FAILED
from gansweep.analysis.records import RUNNING as RUNNING
from gansweep.analysis.records import STOPPED_EARLY as STOPPED_EARLY
from gansweep.analysis.records import UNFINISHED as UNFINISHED
from gansweep.trainers.errors import ConfigError

SPEC, META, OPTUNA_DB, TUNE, TRIALS, EVALUATORS = (
    "spec.yaml", "sweep.json", "optuna.db", "tune", "trials", "evaluators")
CONFIG, STATE, METRICS, RESULT, LEASE, REVIVED = (
    "config.json", "state.pt", "metrics.csv", "result.json", "lease.json", "revived.json")
# What readers need of every ended run (its records and its curve's last row and bests), in
# one file the driver keeps: a result never changes once written (but for a revival's, whose
# entries the driver reads again), so an entry never goes stale, and a run missing from it
# (ended after the last write, or under a killed driver) is read from its own files. Ten
# thousand runs are one read, not thirty thousand (or thirty thousand requests to a bucket).
SUMMARY = "summary.json"
TRACKING = "tracking"  # SWEEP_DIR/tracking/: what each experiment tracker was sent
FIGURES = "figures"  # SWEEP_DIR/trials/KEY/figures/: a figure per full score (tracking only)
DAMAGED = "damaged"  # SWEEP_DIR/damaged/: one note per record found torn and set aside
DAMAGED_FILES = "damaged_files"  # a trial's report: its files set aside as damaged
RERUN_SUFFIX = "-rerun"
# Two keys of sweep.json (records.SweepMeta), for whoever reads the file as it is on disk.
STUDY_STORAGE = "study_storage"  # the study's database URL; absent for SQLite
SPEC_SHA1 = "spec_sha1"  # digest of spec.yaml as written, for quick readers

FLAGS = (COLLAPSED, DIVERGED)  # boolean columns of a report row


def output_file(kind: str) -> str:
    """The file a finished run leaves, for a trainer's OUTPUT kind ("samples", "weights")."""
    return f"{kind}.npy"


def figure_file(step: int) -> str:
    """A run's figure at `step`, under its store entry (zero-padded: names sort by step)."""
    return f"{FIGURES}/step-{step:08d}.png"


def figure_step(name: str) -> int | None:
    """The step of a figure file's name (None: not one of ours)."""
    m = re.fullmatch(r"step-(\d+)\.png", name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


OUTPUT_FILES = tuple(output_file(k) for k in ("samples", "weights"))


def rerun_dir(root: Path | UriPath) -> Path | UriPath:
    return root.parent / (root.name + RERUN_SUFFIX)


def is_sweep_dir(root: str | Path | UriPath) -> bool:
    root = sweep_path(root)
    return (root / SPEC).is_file() and (root / META).is_file()


def study_url(root: Path | UriPath, meta: SweepMeta) -> str | None:
    """Where the sweep's Optuna study lives: the URL sweep.json records (a server database,
    without its password), or the SQLite file in the sweep directory (the default, and every
    sweep made before the record existed). None for a sweep in a bucket with no record."""
    if meta.study_storage:
        return meta.study_storage
    return None if is_uri(root) else f"sqlite:///{root / OPTUNA_DB}"


def read_meta(root: str | Path | UriPath) -> SweepMeta:
    """sweep.json (the careful read: only not-found is FileNotFoundError, other errors are
    retried, then raised); ValueError when it is not a JSON object."""
    path = sweep_path(root) / META
    fs, where = filesystem(path.uri if isinstance(path, UriPath) else path)
    data = durable.read(fs, where)
    if data is None:
        raise FileNotFoundError(f"{path} does not exist")
    meta = json.loads(data)
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not a JSON object")
    return SweepMeta.from_json(meta)


def write_meta(root: Path | UriPath, meta: SweepMeta) -> None:
    write_file(root / META, json.dumps(json_safe(meta.to_json()), indent=1).encode())


def driver_url(url: str) -> str:
    """The URL SQLAlchemy is given: a bare postgresql:// names psycopg 3, the driver gansweep
    installs (SQLAlchemy before 2.1 would look for psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def stop_reason(row: dict) -> str | None:
    """The reason a report row ends its run, from its flags (None: it does not)."""
    return DIVERGED if row.get("diverged") else COLLAPSED if row.get("collapsed") else None


def trial_key(trainer: str, dataset: Any, config: dict, seed: int, steps: int) -> str:
    """Hyperparameters at their neutral value (trainers/hparams.py: added after sweeps
    existed, and then behaving as before them) are left out, so those sweeps keep their
    keys and resume."""
    from gansweep.trainers.hparams import COMMON, keyed

    blob = json.dumps({"trainer": trainer, "dataset": dataset, "config": keyed(COMMON, config),
                       "seed": seed, "steps": steps}, sort_keys=True, default=str)
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


def metrics_rows(data: bytes | None) -> tuple[list[str], list[list[str]]]:
    """metrics.csv as (header, whole rows): a row torn by a kill mid-write is left out. The
    csv module, not pandas: a reader reads hundreds of these small files and the parser's
    start-up cost dominates."""
    if not data:
        return [], []
    rows = list(csv.reader(io.StringIO(data.decode(errors="replace"))))
    if len(rows) < 2:
        return [], []
    return rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan" / "inf": strict JSON readers choke on bare NaN
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# ---- where a sweep lives: a local or shared path, or a bucket -------------------------------

def is_uri(path: Any) -> bool:
    return "://" in str(path)




@functools.lru_cache(maxsize=32)
def _bucket_fs(scheme: str, bucket: str) -> pafs.FileSystem:
    """One filesystem per bucket and process: pyarrow reads credentials and the endpoint from
    the environment when one is made (and on S3 may look the bucket's region up), which is not
    worth repeating for every file."""
    fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
    return fs


def filesystem(uri: str | Path) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path on it) of a local path or of a URI pyarrow's filesystems open."""
    uri = str(uri)
    if not is_uri(uri):
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    scheme, rest = uri.split("://", 1)
    try:
        if scheme in ("s3", "gs", "gcs"):
            return _bucket_fs(scheme, rest.split("/", 1)[0]), rest.rstrip("/")
        return pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as exc:  # pyarrow.ArrowInvalid is a ValueError
        raise ConfigError(f"{uri}: cannot be opened ({exc}); check the bucket's name and this "
                          "machine's environment (AWS_REGION, AWS_ENDPOINT_URL, credentials)"
                          ) from None


# The URI schemes of pyarrow's filesystems (pyarrow.fs.FileSystem.from_uri).
SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")


def check_uri(uri: str) -> None:
    """Refuse, without touching the network, a URI no pyarrow filesystem opens, or one that
    carries settings or credentials: spec.yaml and sweep.json record the location, a command
    line is visible in `ps` and in Ray's job table, and every node must reach the store the
    same way (its environment). No message repeats a part of the URI that may hold a secret."""
    scheme, _, rest = uri.partition("://")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        scheme = "?"  # not a scheme: whatever was typed before :// is not repeated
    # user:secret@ or user@ before the bucket; a raw secret may itself hold '/', so a ':' before
    # any '/' followed by an '@' anywhere counts too
    if "@" in rest.split("/", 1)[0] or (re.match(r"[^/@:]*:", rest) and "@" in rest):
        raise ConfigError(f"{scheme}:// URI with credentials in it (a part before '@'), "
                          "refused: they would be readable in `ps`, Ray's job table and the "
                          "sweep's records. Drop that part and give the credentials in this "
                          "machine's environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                          "GOOGLE_APPLICATION_CREDENTIALS, ...)")
    shown = f"{scheme}://{rest.split('?', 1)[0]}"
    if scheme not in SCHEMES:
        raise ConfigError(f"{shown}: {scheme}:// is not a filesystem pyarrow opens; give a "
                          "local path, s3://bucket/prefix or gs://bucket/prefix")
    if "?" in rest:
        raise ConfigError(f"{shown}: give the endpoint and credentials of an object store in "
                          "the environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                          "AWS_SECRET_ACCESS_KEY, ...), not in the URI; drop the '?...' part")


def sweep_path(path: str | Path | UriPath) -> Path | UriPath:
    """A sweep directory (or a file in one) as an absolute Path, or as a UriPath for a URI."""
    if isinstance(path, UriPath):
        return path
    if not is_uri(path):  # absolute: Ray Tune takes a relative storage path for a URI
        return Path(os.path.abspath(path))
    check_uri(str(path))
    return UriPath(path)


class UriPath:
    """A file or folder named by a URI (s3://bucket/key), with the pathlib.Path methods the
    sweep code uses. Reads of a missing file raise FileNotFoundError, as Path's do; writes are
    atomic (see `write_file`)."""

    def __init__(self, uri: str):
        self.uri = str(uri).rstrip("/")

    @property
    def fs(self) -> pafs.FileSystem:  # made on first use: it may look the bucket's region up
        return filesystem(self.uri)[0]

    @property
    def path(self) -> str:
        return filesystem(self.uri)[1]

    def __reduce__(self):  # pickles as its URI: each process makes its own client
        return UriPath, (self.uri,)

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"UriPath({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UriPath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __truediv__(self, name: str) -> UriPath:
        return UriPath(f"{self.uri}/{name}")

    @property
    def name(self) -> str:
        return self.uri.rsplit("/", 1)[-1]

    @property
    def parent(self) -> UriPath:
        head = self.uri.rsplit("/", 1)[0]
        return UriPath(head) if "://" in head and head.split("://", 1)[1] else self

    def resolve(self) -> UriPath:
        return self

    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def iterdir(self):
        if not self.is_dir():
            return iter(())
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return iter([self / i.base_name for i in infos])

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        if self.fs.type_name not in WHOLE_OBJECT_STORES:  # a bucket has no folders to make
            self.fs.create_dir(self.path, recursive=parents)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        write_file(self, data)

    def write_text(self, text: str) -> None:
        write_file(self, text.encode())

    def unlink(self) -> None:
        self.fs.delete_file(self.path)


def write_file(path: Path | UriPath, data: bytes) -> None:
    """Durable and atomic (analysis/durable.py): a reader, a kill or a power cut mid-write
    never leaves a torn file."""
    fs, where = filesystem(path.uri if isinstance(path, UriPath) else path)
    durable.write(fs, where, data)


def load_array(path: Path | UriPath):
    """A .npy a run left (samples or a map's weights): plain numbers, never pickled objects."""
    import numpy as np

    return np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)


class UnsafeCheckpoint(Exception):
    """A checkpoint that cannot be loaded as tensors and plain values (see `load_checkpoint`)."""


def load_checkpoint(data: bytes, where: str) -> Any:
    """A checkpoint's contents, loaded with weights_only=True: a pickle that would run code --
    planted in a shared sweep directory, or from elsewhere -- is refused, never run."""
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torn files and refused pickles raise many kinds
        text = str(exc)
        found = re.search(r"GLOBAL (\S+)", text)
        if found:  # torch's own message goes on to suggest weights_only=False: not here
            raise UnsafeCheckpoint(
                f"{where} holds a pickled reference to {found.group(1)}, which loading it "
                "would run or build; refused without running it. gansweep writes tensors and "
                "plain values only: this file was planted or comes from elsewhere") from None
        reason = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
        if "Weights only load failed" in text:
            reason = "not a checkpoint gansweep wrote: its pickle has unknown operations"
        raise UnsafeCheckpoint(f"{where} is unreadable ({reason})") from None


# What becomes of a run whose file is found torn or unreadable (it is set aside, never read).
AFTER_DAMAGE = {
    RESULT: "its result is set aside and the run counts as unfinished: the next resume trains "
            "it again from its last checkpoint",
    CONFIG: "its record is written again when its configuration next runs",
    STATE: "its checkpoint is set aside and the run trains again from step 0",
    REVIVED: "its revival record is set aside and the run counts as not revived",
    LEASE: "its lease is set aside and taken again by the next trial that runs it",
}


class TrialStore:
    """SWEEP_DIR/trials: one folder per configuration key; every write is durable and atomic.

    A record found torn (a crash before writes were durable, a disk error) is damage: a store
    opened with `repair` (the driver's, a trial's) sets the file aside as NAME.damaged-TIME and
    leaves a note in SWEEP_DIR/damaged/; a reader's store (status, report) only lists it in
    `damage`. Either way it reads as absent, never as an exception."""

    def __init__(self, root: str, repair: bool = False):
        self.uri = str(root).rstrip("/")
        self.fs, self.root = filesystem(self.uri)
        self.repair = repair
        self.damage: list[dict] = []

    @classmethod
    def of(cls, sweep_dir: str | Path, repair: bool = False) -> TrialStore:
        return cls(f"{str(sweep_dir).rstrip('/')}/{TRIALS}", repair)

    @property
    def notes_dir(self) -> str:
        return self.root.rsplit("/", 1)[0] + "/" + DAMAGED

    def damaged(self, key: str, name: str, reason: str) -> dict:
        """Record (and, repairing, set aside) a file of `key` that cannot be used."""
        note = {"key": key, "file": name, "reason": reason, "found": time.time(),
                "what_happens": AFTER_DAMAGE.get(name, "it is set aside"), "kept_as": None}
        if self.repair:
            note["kept_as"] = self.move_aside(key, name, "damaged")
            durable.write(self.fs, f"{self.notes_dir}/{key}.{note['kept_as']}.json",
                          json.dumps(note).encode())
        self.damage.append(note)
        return note

    def damage_notes(self) -> list[dict]:
        """Damage recorded in SWEEP_DIR/damaged/ (set aside earlier) and found by this store."""
        out = []
        if self.fs.get_file_info(self.notes_dir).type == pafs.FileType.Directory:
            for info in self.fs.get_file_info(pafs.FileSelector(self.notes_dir)):
                data = durable.read(self.fs, info.path)
                try:
                    out.append(json.loads(data or b""))
                except ValueError:
                    continue  # a note torn in a crash: the file it names is aside anyway
        seen = {(n["key"], n.get("kept_as")) for n in out}
        return out + [n for n in self.damage if (n["key"], n["kept_as"]) not in seen]

    def path(self, key: str, name: str = "") -> str:
        return "/".join(p for p in (self.root, key, name) if p)

    def keys(self) -> list[str]:
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return []
        sel = pafs.FileSelector(self.root, recursive=False)
        return sorted(i.base_name for i in self.fs.get_file_info(sel)
                      if i.type == pafs.FileType.Directory)

    def figures(self, key: str) -> list[tuple[int, str]]:
        """(step, name under the entry) of the run's figures, in step order."""
        sel = pafs.FileSelector(self.path(key, FIGURES), allow_not_found=True)
        found = ((figure_step(i.base_name), i.base_name) for i in self.fs.get_file_info(sel))
        return sorted((step, f"{FIGURES}/{name}") for step, name in found if step is not None)

    def exists(self, key: str, name: str) -> bool:
        return self.fs.get_file_info(self.path(key, name)).type == pafs.FileType.File

    def read(self, key: str, name: str) -> bytes | None:
        """None only when the file does not exist; other errors are retried, then raised
        (durable.Unreadable): a throttled read must not make a finished run look unfinished."""
        return durable.read(self.fs, self.path(key, name))

    def write(self, key: str, name: str, data: bytes) -> None:
        durable.write(self.fs, self.path(key, name), data)

    def move_aside(self, key: str, name: str, suffix: str) -> str:
        """Rename a file out of the way (kept, never overwritten); returns its new name."""
        aside = f"{name}.{suffix}-{int(time.time())}"
        self.fs.move(self.path(key, name), self.path(key, aside))
        return aside

    def read_json(self, key: str, name: str) -> dict | None:
        """A record; None when it is absent or damaged (see `damaged`)."""
        data = self.read(key, name)
        if data is None:
            return None
        try:
            record = json.loads(data)
        except ValueError as exc:
            self.damaged(key, name, f"not valid JSON ({exc})")
            return None
        if not isinstance(record, dict):
            self.damaged(key, name, "not a JSON object")
            return None
        return record

    def write_json(self, key: str, name: str, obj: dict) -> None:
        self.write(key, name, json.dumps(json_safe(obj), indent=1, default=str).encode())

    def read_torch(self, key: str, name: str):
        """A checkpoint (None when there is none); raises UnsafeCheckpoint for one that is torn
        or would run code when loaded."""
        data = self.read(key, name)
        return None if data is None else load_checkpoint(data, self.path(key, name))

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

    # ---- records (analysis/records.py) ---------------------------------------------------
    def record(self, key: str) -> RunRecord | None:
        """config.json; None when absent or damaged."""
        record = self.read_json(key, CONFIG)
        return None if record is None else RunRecord.from_json(record)

    def write_record(self, key: str, record: RunRecord) -> None:
        self.write_json(key, CONFIG, record.to_json())

    def result(self, key: str) -> RunResult | None:
        """result.json; None while the run goes on, after an interruption, or when damaged."""
        result = self.read_json(key, RESULT)
        return None if result is None else RunResult.from_json(result)

    def has_result(self, key: str) -> bool:
        return self.exists(key, RESULT)

    def revival(self, key: str) -> Revival | None:
        """revived.json: where a revived run paused; None for a run never revived."""
        paused = self.read_json(key, REVIVED)
        return None if paused is None else Revival.from_json(paused)

    def write_result(self, key: str, reason: str, step: int, objective: float | None,
                     final: dict, trial_id: str, resumed_from_step: int | None = None,
                     node_id: str | None = None) -> None:
        """result.json: how the configuration ended. The one writer of this record, whether
        the trial ended itself or was ended from outside (ASHA, failure). A revived run's
        keeps where it paused (`revived`), so its steps are counted where they were spent."""
        self.write_json(key, RESULT, RunResult(
            key=key, stop_reason=reason, stop_step=step, objective=objective, final=final,
            trial_id=trial_id, time_s=final.get("time_s"), resumed_from_step=resumed_from_step,
            node_id=node_id, revived=self.revival(key), finished=time.time()).to_json())

    def reopen(self, key: str) -> None:
        """A collapsed run's result becomes a pause: where it paused goes to revived.json
        first, then its result is moved aside (kept). A kill between the two leaves the result
        in place and the run still paused; reopening again writes the same record."""
        paused = self.result(key)
        if paused is None or paused.revived is not None:
            return
        self.write_json(key, REVIVED, paused.paused().to_json())
        self.move_aside(key, RESULT, "paused")

    # ---- who is training a configuration right now ------------------------------------------
    def claim(self, key: str, run_id: str, trial_id: str, wait_s: float = 3600.0,
              ended: bool = False) -> bool:
        """Take the lease on `key` for this trial (`ended`: of a run that ended, which the
        searcher revives; the trial that ended it holds no live lease).

        A lease from another driver run is taken over once its holder is dead
        (`liveness.why_dead`: its process gone on this host, or no write to the run's files for
        `liveness.STALE_S`): a trial of a driver that was killed may still be training on a
        cluster that outlives it. A live lease of another trial in this run means the searcher
        suggested the same configuration twice. Either way this trial waits for the holder's
        result instead of training it again. Returns False when a result appeared while
        waiting.
        """
        deadline = time.time() + wait_s
        while True:
            lease = self.read_json(key, LEASE)
            if (ended or lease is None or lease.get("trial_id") == trial_id
                    or (lease.get("run_id") != run_id and self._lease_dead(key, lease))):
                self.write_json(key, LEASE, {**liveness.me(), "run_id": run_id,
                                             "trial_id": trial_id, "time": time.time()})
                return True
            if self.has_result(key):
                return False
            if time.time() > deadline:
                raise TimeoutError(f"trial {lease.get('trial_id')} holds configuration {key} "
                                   f"for more than {wait_s:.0f} s")
            time.sleep(1.0)

    def _lease_dead(self, key: str, lease: dict) -> bool:
        """The holder's heartbeat is its last write: the lease, a checkpoint or a report."""
        infos = self.fs.get_file_info([self.path(key, n) for n in (STATE, METRICS)])
        beats = [float(lease.get("time") or 0)] + [i.mtime.timestamp() for i in infos
                                                    if i.mtime is not None]
        return liveness.why_dead(lease, max(beats)) is not None
