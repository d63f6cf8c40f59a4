"""Bad input through the real command line: every refusal exits 2 with one line,
`gansweep CMD: error: ...`, naming the key to change; no stack trace; nothing made anywhere
(the storage, the working directory, TMPDIR, the data cache); no Ray started; no secret
repeated back.

Each case runs `python -m gansweep` in a fresh process with a directory of its own as its
working directory, storage, TMPDIR and cache, snapshotted before and after; RAY_TMPDIR points
at a folder that must still not exist afterwards. The cases run a few at a time in one module
fixture (each costs an interpreter and torch's import), then each is judged on its own.

A read-only and a full filesystem are real: a tmpfs mounted read-only, or filled to its last
block, in a mount namespace of the command's own (`unshare`), so nothing outlives the test.
Running as root, a read-only directory would be writable, and /proc is tried as well.
"""
from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

SECRET = "s3cr3t-0d8f1e2a"  # in every URI with a password or key: never to be printed
SEED_MAX = 2**32 - 1
BASE = {"name": "bad", "trainer": "gan", "dataset": "ring8", "trials": 2, "steps": 40,
        "report_every": 20, "metric": "modes_captured", "seeds": 1,
        "fixed": {"width": 16, "batch_size": 64}}
# A refusal costs an interpreter, torch and Ray Tune's import: 2-3 s, more on a loaded machine.
# The RAY_TMPDIR check is what proves no Ray started; this only catches a hang.
FAST_S = 60


@dataclass
class Case:
    id: str
    argv: list[str]  # "{w}": the case's directory
    key: str  # what the message must name
    spec: dict | None = None  # changes to BASE, written to {w}/spec.yaml (None: no spec)
    mount: str = ""  # "ro" or "full": storage is a tmpfs, read-only or filled
    files: dict = field(default_factory=dict)  # path under {w} -> bytes, made beforehand


def submit(key: str, **changes) -> Case:
    return Case("", ["submit", "{w}/spec.yaml"], key, spec=changes)


def case(id_: str, c: Case) -> Case:
    c.id = id_
    return c


TORN = {"run/config.json": b'{"trainer": "gan", "data', "run/checkpoint/state.pt": b"PK\x03"}
CASES = [
    # not-a-number and infinite learning rates, in space bounds, fixed values and --set
    case("nan-lr-space-low", submit("space.lr_g", space={"lr_g": {"low": float("nan"),
                                                                  "high": 0.1}})),
    case("nan-lr-fixed", submit("fixed.lr_g", fixed={"lr_g": float("nan")})),
    case("inf-lr-fixed", submit("fixed.lr_d", fixed={"lr_d": float("inf")})),
    Case("nan-lr-set", ["train", "gan", "--dataset", "ring8", "--set", "lr_g=nan",
                        "--out", "{w}/run"], "lr_g"),
    Case("huge-int-set", ["train", "gan", "--dataset", "ring8", "--set", "batch_size=1e999",
                          "--out", "{w}/run"], "batch_size"),
    # seeds numpy cannot take, at once or after resumes (each driver run adds 1000)
    case("seed-beyond-uint32", submit("seed", seed=2**32)),
    case("seed-near-the-limit", submit("seed", seed=SEED_MAX - 1000)),
    Case("train-seed-beyond-uint32", ["train", "gan", "--dataset", "ring8", "--seed",
                                      str(2**32), "--out", "{w}/run"], "--seed"),
    # budgets and counts
    case("budget-smaller-than-a-run", submit("budget.steps", budget={"steps": 10})),
    case("infinite-hours", submit("budget.hours", budget={"hours": float("inf")})),
    case("negative-trials", submit("trials", trials=-3)),
    case("steps-wrong-type", submit("steps", steps="many")),
    case("infinite-gpu", submit("resources.gpu", resources={"gpu": float("inf")})),
    # where the sweep goes
    Case("storage-is-a-file", ["submit", "{w}/spec.yaml"], "storage",
         spec={"storage": "{w}/afile"}, files={"afile": b"x"}),
    Case("storage-under-a-file", ["submit", "{w}/spec.yaml"], "storage",
         spec={"storage": "{w}/afile/sweeps"}, files={"afile": b"x"}),
    case("storage-under-proc", submit("storage", storage="/proc/gansweep-sweeps")),
    Case("storage-read-only", ["submit", "{w}/spec.yaml"], "storage",
         spec={"storage": "{w}/mnt/sweeps"}, mount="ro"),
    Case("storage-full", ["submit", "{w}/spec.yaml"], "storage",
         spec={"storage": "{w}/mnt/sweeps"}, mount="full"),
    case("storage-uri-with-key-and-secret",
         submit("storage", storage=f"s3://AKIAKEY:{SECRET}@bucket/sweeps",
                study="postgresql://gs@db.invalid/sweeps")),
    case("storage-uri-with-secret-holding-slash",
         submit("storage", storage=f"s3://AKIAKEY:{SECRET}/x+y@bucket/sweeps",
                study="postgresql://gs@db.invalid/sweeps")),
    case("storage-uri-with-user", submit("storage", storage=f"gs://{SECRET}@bucket/sweeps",
                                         study="postgresql://gs@db.invalid/sweeps")),
    case("storage-uri-with-query-secret",
         submit("storage", storage=f"s3://bucket/sweeps?secret_key={SECRET}",
                study="postgresql://gs@db.invalid/sweeps")),
    case("study-url-with-password",
         submit("study", study=f"postgresql://gs:{SECRET}@db.invalid:5432/sweeps")),
    case("study-url-with-password-query",
         submit("study", study=f"postgresql://gs@db.invalid/sweeps?password={SECRET}")),
    # names and keys
    case("name-with-newline", submit("name", name="ring8\nrm -rf")),
    case("unknown-key", submit("colour", colour="red")),
    case("metric-for-another-trainer", submit("metric", metric="quantization_error")),
    case("bad-sampler", submit("sampler", sampler="grid")),
    Case("missing-spec-file", ["submit", "{w}/nope.yaml"], "spec file"),
    Case("spec-not-a-mapping", ["submit", "{w}/list.yaml"], "YAML mapping",
         files={"list.yaml": b"- name: x\n"}),
    Case("spec-not-yaml", ["submit", "{w}/broken.yaml"], "not valid YAML",
         files={"broken.yaml": b"name: [unclosed\n"}),
    Case("bad-address", ["submit", "{w}/spec.yaml", "--address", "head:port"], "address",
         spec={}),
    case("warm-start-not-a-sweep", submit("warm_start", warm_start="{w}/cwd")),
    case("warm-start-bad-shape", submit("warm_start", warm_start={"sweeps": [], "top": 2})),
    # `submit --set`: validated like the file
    Case("set-unknown-key", ["submit", "{w}/spec.yaml", "--set", "colour=red"],
         "--set colour", spec={}),
    Case("set-bad-value", ["submit", "{w}/spec.yaml", "--set", "steps=-5"], "steps", spec={}),
    Case("set-into-a-scalar", ["submit", "{w}/spec.yaml", "--set", "dataset.image_size=16"],
         "--set dataset.image_size", spec={}),
    Case("set-without-equals", ["submit", "{w}/spec.yaml", "--set", "steps"], "--set",
         spec={}),
    Case("set-storage-with-secret", ["submit", "{w}/spec.yaml", "--set",
                                     f"storage=s3://KEY:{SECRET}@bucket/sweeps"], "storage",
         spec={}),
    # sweep directories typed on the command line
    Case("status-uri-with-secret", ["status", f"s3://AKIAKEY:{SECRET}@bucket/sweeps/x"],
         "SWEEP_DIR"),
    Case("report-uri-with-secret", ["report", f"s3://K:{SECRET}@bucket/x", "--out",
                                    "{w}/report"], "SWEEP_DIR"),
    Case("status-missing-directory", ["status", "{w}/nosuch"], "{w}/nosuch"),
    Case("resume-not-a-sweep", ["resume", "{w}/cwd"], "{w}/cwd"),
    Case("resume-study-with-password", ["resume", "{w}/nosuch", "--study",
                                        f"postgresql://gs:{SECRET}@db.invalid/sweeps"],
         "--study"),
    Case("resume-budget-garbage", ["resume", "{w}/nosuch", "--budget", "lots"], "--budget"),
    Case("resume-budget-infinite", ["resume", "{w}/nosuch", "--budget", "steps=inf"],
         "--budget"),
    Case("resume-budget-nan-hours", ["resume", "{w}/nosuch", "--budget", "hours=nan"],
         "--budget"),
    Case("resume-negative-trials", ["resume", "{w}/nosuch", "--trials", "-1"], "--trials"),
    Case("rerun-top-0", ["rerun", "{w}/nosuch", "--top", "0"], "--top"),
    Case("report-out-is-a-file", ["report", "{w}/nosuch", "--out", "{w}/afile"], "--out",
         files={"afile": b"x"}),
    # gansweep train
    Case("train-report-every-0", ["train", "gan", "--dataset", "ring8", "--report-every", "0",
                                  "--out", "{w}/run"], "--report-every"),
    Case("train-score-every-not-a-multiple", ["train", "gan", "--dataset", "ring8",
                                              "--report-every", "2", "--score-every", "3",
                                              "--out", "{w}/run"], "--score-every"),
    Case("train-out-is-a-file", ["train", "gan", "--dataset", "ring8", "--out", "{w}/afile"],
         "--out", files={"afile": b"x"}),
    Case("train-resume-torn-run", ["train", "gan", "--dataset", "ring8", "--resume", "--out",
                                   "{w}/run"], "--out", files=TORN),
    Case("train-bad-device", ["train", "gan", "--dataset", "ring8", "--device", "tpu",
                              "--out", "{w}/run"], "--device"),
]


def _mount_namespace() -> list[str] | None:
    """The prefix that runs a command in a mount namespace of its own, or None."""
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=20).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


# Shell run in the namespace: mount, run the command, then record what is in the mount (seen
# from outside, the folder is the empty one under the mount, which says nothing)
MOUNT = {
    "ro": 'mount -t tmpfs -o ro,size=256k tmpfs "$mp"',
    "full": 'mount -t tmpfs -o size=256k tmpfs "$mp" && '
            '{ dd if=/dev/zero of="$mp/fill" bs=4k 2>/dev/null; true; }',
}
IN_NAMESPACE = ('mp="$1"; listing="$2"; shift 2; {mount} && "$@"; rc=$?; '
                'ls -A "$mp" > "$listing"; exit $rc')


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    changed: list[str]
    ray_dir_made: bool
    in_mount: list[str] | None = None
    skipped: str = ""


def _run(c: Case, base: Path, namespace: list[str] | None) -> Outcome:
    w = base / c.id
    aux = base / f"{c.id}.aux"  # outside what is snapshotted
    for d in ("cwd", "tmp", "mnt"):
        (w / d).mkdir(parents=True)
    aux.mkdir()
    for rel, data in c.files.items():
        (w / rel).parent.mkdir(parents=True, exist_ok=True)
        (w / rel).write_bytes(data)
    if c.spec is not None:
        raw = {**BASE, "storage": str(w / "storage"), **c.spec}
        raw = {k: v.format(w=w) if isinstance(v, str) and k in ("storage", "warm_start") else v
               for k, v in raw.items()}
        (w / "spec.yaml").write_text(yaml.safe_dump(raw))
    (w / "storage").mkdir()
    argv = [a.replace("{w}", str(w)) for a in c.argv]
    cmd = [sys.executable, "-m", "gansweep", *argv]
    if c.mount:
        if namespace is None:
            return Outcome(None, "", "", 0, [], False, skipped="no mount namespace here "
                           "(unshare -m / -rm refused): cannot make a read-only or full tmpfs")
        cmd = [*namespace, "sh", "-c", IN_NAMESPACE.format(mount=MOUNT[c.mount]), "sh",
               str(w / "mnt"), str(aux / "listing"), *cmd]
    # Short: Ray's socket paths under it must fit in 107 bytes, or a Ray that starts fails
    ray_tmp = Path(tempfile.gettempdir()) / f"gsb{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(ray_tmp),
           "TMPDIR": str(w / "tmp"), "GANSWEEP_CACHE": str(w / "cache"),
           "PGPASSFILE": str(aux / "no-pgpass"),
           # torch makes its compiler cache in TMPDIR when an optimiser is first built (the
           # driver checks the data by building the trainer): torch's, not gansweep's
           "TORCHINDUCTOR_CACHE_DIR": str(aux / "torchinductor")}
    env.pop("RAY_ADDRESS", None)
    env.pop("PGPASSWORD", None)
    before = snapshot(w)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=w / "cwd", env=env, capture_output=True, text=True,
                              timeout=FAST_S)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        out = (exc.stdout or b"").decode(errors="replace")
        err = (exc.stderr or b"").decode(errors="replace")
    seconds = time.monotonic() - t0
    after = snapshot(w)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    listing = aux / "listing"
    in_mount = listing.read_text().split() if listing.exists() else None
    ray_made = ray_tmp.exists()
    shutil.rmtree(ray_tmp, ignore_errors=True)
    return Outcome(rc, out, err, seconds, changed, ray_made, in_mount)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    namespace = _mount_namespace()
    t0 = time.monotonic()
    # three at a time on two cores: each case waits on imports from disk part of its time
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {c.id: pool.submit(_run, c, base, namespace) for c in CASES}
        done = {k: f.result() for k, f in futures.items()}
    slowest = max(done.values(), key=lambda o: o.seconds)
    print(f"\n{len(CASES)} bad inputs in {time.monotonic() - t0:.1f} s (slowest "
          f"{slowest.seconds:.1f} s)")
    yield done, base
    shutil.rmtree(base, ignore_errors=True)


def test_the_table_covers_enough_distinct_inputs():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_up_front(c, outcomes):
    done, base = outcomes
    o = done[c.id]
    if o.skipped:
        pytest.skip(o.skipped)
    printed = o.stdout + o.stderr
    command = c.argv[0]
    assert o.rc == 2, f"exit {o.rc} after {o.seconds:.1f} s:\n{printed[-3000:]}"
    assert "Traceback" not in printed, printed[-3000:]
    assert SECRET not in printed, "a secret was printed back"
    assert o.stdout == "", o.stdout
    lines = o.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(rf"gansweep {command}: error: \S", lines[0]), lines
    key = c.key.replace("{w}", str(base / c.id))
    assert key in lines[0], f"the message does not name {key!r}: {lines[0]}"
    assert o.changed == [], f"made or changed: {o.changed}"
    assert not o.ray_dir_made, "a Ray session was started"
    assert o.seconds < FAST_S
    if c.mount == "ro":
        assert o.in_mount == []
    if c.mount == "full":  # the filler alone: no directory, no probe file left behind
        assert o.in_mount == ["fill"]


# ---- a sweep whose every run fails: not bad input the driver could see, but said as plainly --

def test_sweep_whose_every_run_fails_exits_1_with_the_first_failures_message(tmp_path):
    """The dataset is a file only the driver's machine has, as on a cluster whose workers do
    not mount that disk: here it is removed once the driver has checked it and is starting
    Ray, so every trial fails on loading it."""
    import numpy as np

    from tests.faults import Driver, wait_for, write_spec

    data = tmp_path / "only-here.npy"
    np.save(data, np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32))
    spec = write_spec(tmp_path / "spec.yaml", {
        **BASE, "name": "fails", "dataset": str(data), "metric": "coverage", "steps": 20,
        "report_every": 10, "max_failures": 0, "max_concurrent": 2,
        "storage": str(tmp_path / "sweeps")})
    driver = Driver("submit", str(spec), log=tmp_path / "submit.log")
    wait_for(lambda: "starting a local Ray" in driver.output(), "the driver starting Ray",
             driver=driver, poll=0.02)
    data.unlink()
    rc = driver.wait(timeout=300)
    printed = driver.output()
    assert rc == 1, printed[-3000:]
    last = printed.strip().splitlines()[-1]
    assert last.startswith("gansweep submit: error: all 2 run(s) failed; the first: dataset "
                           f"path {data} does not exist"), last
    assert "Traceback" not in printed and "[gansweep] done" not in printed, printed[-3000:]
    run = tmp_path / "sweeps" / "fails" / "tune" / "run-001"
    assert f"{run}/trial_*/error.txt" in last
    stacks = list(run.glob("trial_*/error.txt"))
    assert len(stacks) == 2 and all(f"{data} does not exist" in p.read_text() for p in stacks)
