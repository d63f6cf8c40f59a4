"""Cluster storage against real servers the tests start (tests/servers.py): the sweep directory
in a bucket of a local S3-compatible server, read and written through pyarrow's S3 filesystem
and Ray Tune's storage, and the Optuna study in PostgreSQL. A driver is SIGKILLed mid-sweep and
resumed; status, report and rerun read the bucket from other processes; a two-node cluster
keeps its trial store there; and no password or secret key is written anywhere."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

from gansweep.analysis.layout import CONFIG, STUDY_STORAGE, TrialStore, sweep_path
from tests.conftest import ROOT, run_cli, tiny_spec
from tests.faults import (
    Driver,
    download,
    results,
    store_histories,
    store_results,
    store_steps,
    tune_reports,
    wait_for,
    write_spec,
)
from tests.servers import PG_PASSWORD, S3_SECRET
from tests.test_cluster import TWO_NODES

TRIALS, STEPS, EVERY = 4, 200, 20  # a trial lasts seconds: a kill lands mid-way


def _mid_sweep(root) -> bool:
    """A configuration has finished and another has two checkpoints, at most half its steps."""
    done = store_results(root)
    return bool(done) and any(2 <= len(v) and v[-1] <= STEPS // 2 and k not in done
                              for k, v in store_histories(root).items())


def _no_password_from_libpq(mp: pytest.MonkeyPatch, tmp) -> None:
    """Neither PGPASSWORD nor a ~/.pgpass of whoever runs the tests: the password must come
    from where the test says."""
    mp.delenv("PGPASSWORD", raising=False)
    mp.setenv("PGPASSFILE", str(tmp / "no-pgpass"))


def _submit_kill_resume(spec, uri, root, url, tmp):
    driver = Driver("submit", str(spec), log=tmp / "run0.log")
    wait_for(lambda: _mid_sweep(root), "one configuration finished, another mid-way",
             driver=driver)
    # The head node lost at once: the driver and the Ray processes it started (its process
    # group), so no trial outlives it to finish after the snapshot below.
    os.killpg(driver.proc.pid, signal.SIGKILL)
    driver.proc.wait(timeout=120)
    driver.clear()
    before = store_results(root)
    at_kill = {k: v[-1] for k, v in store_histories(root).items() if v and k not in before}
    driver = Driver("resume", uri, "--study", url, log=tmp / "run1.log")
    assert driver.wait() == 0, driver.output()[-3000:]
    return before, at_kill


@pytest.fixture(scope="module")
def bucket_sweep(s3, postgres, tmp_path_factory):
    """Submit, SIGKILL mid-sweep, resume (the study's URL given again with --study), the
    password only in PGPASSWORD; then status and rerun from fresh processes without it, and
    report with it. Everything they printed is kept for the credentials check."""
    tmp = tmp_path_factory.mktemp("bucket")
    bucket = s3.create_bucket("faults")
    postgres.create_database("faults")
    url = postgres.url("faults")
    raw = tiny_spec(f"{bucket}/sweeps", trials=TRIALS, steps=STEPS, report_every=EVERY,
                    early_stop={"collapse": False}, study=url)
    spec = write_spec(tmp / "spec.yaml", raw)
    uri = f"{bucket}/sweeps/tiny"
    root = sweep_path(uri)
    with pytest.MonkeyPatch.context() as mp:
        _no_password_from_libpq(mp, tmp)
        mp.setenv("PGPASSWORD", PG_PASSWORD)
        before, at_kill = _submit_kill_resume(spec, uri, root, url, tmp)
        mp.delenv("PGPASSWORD")
        status = run_cli("status", uri, "--json")
        rerun = Driver("rerun", uri, "--top", "1", "--seeds", "1", log=tmp / "rerun.log")
        assert rerun.wait() == 0, rerun.output()[-3000:]
        report = run_cli("report", uri, "--out", str(tmp / "report"),
                         env={"PGPASSWORD": PG_PASSWORD})
    return SimpleNamespace(
        tmp=tmp, uri=uri, root=root, url=url, spec=spec, before=before, at_kill=at_kill,
        copy=download(root, tmp / "copy"), status=json.loads(status.stdout),
        rerun_copy=download(sweep_path(uri + "-rerun"), tmp / "rerun-copy"),
        printed=[p.stdout + p.stderr for p in (status, report)],
        logs=[tmp / "run0.log", tmp / "run1.log", tmp / "rerun.log"], report=tmp / "report")


def test_killed_bucket_sweep_resumes_with_nothing_lost_or_repeated(bucket_sweep):
    b = bucket_sweep
    assert b.before and b.at_kill, "the kill did not land mid-sweep"
    final = results(b.copy)
    assert len(final) == TRIALS
    assert all(r["stop_reason"] == "completed" and r["stop_step"] == STEPS
               for r in final.values())
    for key, r in b.before.items():  # finished before the kill: there once, unchanged
        assert final[key] == r
    for key, step in b.at_kill.items():  # running at the kill: continued from its checkpoint
        assert final[key]["resumed_from_step"] >= step, (key, final[key], step)
    for key, steps in store_steps(b.copy).items():  # whole histories, nothing twice
        assert steps == list(range(EVERY, STEPS + 1, EVERY)), (key, steps)
    # Ray Tune's own results went to the bucket too (the killed run's only as far as Tune
    # had uploaded them): no interval reported twice across the driver runs
    reports = collections.Counter(tune_reports(b.copy))
    assert reports and not [kv for kv, n in reports.items() if n > 1], reports


def test_study_is_in_postgres_and_recorded_without_password(bucket_sweep):
    import optuna

    from gansweep.jobs import study

    b = bucket_sweep
    meta = json.loads((b.copy / "sweep.json").read_text())
    assert meta[STUDY_STORAGE] == b.url and PG_PASSWORD not in b.url
    assert not list(b.copy.rglob("*.db")), "an SQLite file was made in the bucket"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", PG_PASSWORD)
        storage = study.open_storage(b.url)
    loaded = optuna.load_study(study_name=meta["study_name"], storage=storage)
    complete = loaded.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    configs = {k: json.loads((b.copy / "trials" / k / CONFIG).read_text())["config"]
               for k in results(b.copy)}

    def told(config: dict) -> bool:
        return any(all(config.get(p) == v for p, v in t.params.items()) for t in complete)

    # every configuration the resumed driver finished was told to the study in PostgreSQL
    # (one that ended just as the driver died may have missed being told: see the report)
    resumed = set(configs) - set(b.before)
    assert resumed and all(told(configs[k]) for k in resumed)
    # the trials the killed driver left RUNNING were closed by resume
    assert not loaded.get_trials(states=(optuna.trial.TrialState.RUNNING,))


def test_status_rerun_and_report_read_the_bucket(bucket_sweep):
    b = bucket_sweep
    assert b.status["counts"]["completed"] == TRIALS
    assert b.status["dir"] == b.uri and b.status["study_storage"].startswith("postgresql://")
    rerun = results(b.rerun_copy)
    assert len(rerun) == 1 and next(iter(rerun.values()))["stop_reason"] == "completed"
    md = (b.report / "report.md").read_text()
    assert b.uri in md and "NOT FINISHED" not in md
    # the importance section read the study from PostgreSQL (password from PGPASSWORD)
    assert "could not be read" not in md and "no Optuna study" not in md
    assert "complete trial(s) with a finite objective" in md or "fANOVA" in md
    assert "no rerun found" not in md  # the rerun beside it in the bucket was picked up
    assert len(list((b.report / "img").glob("samples-*.png"))) >= 1  # read from the bucket


def test_no_password_or_secret_key_is_written(bucket_sweep):
    """Everything under the sweep and its rerun in the bucket (Ray Tune's pickled searcher
    state included), the report, and what every command printed or logged."""
    b = bucket_sweep
    secrets = (PG_PASSWORD.encode(), S3_SECRET.encode())

    def leaks(paths):
        return [str(p) for p in paths if p.is_file()
                and any(s in p.read_bytes() for s in secrets)]

    control = b.tmp / "control"
    control.write_bytes(b"x" + PG_PASSWORD.encode() + b"y")
    assert leaks([control]) == [str(control)]  # the check can find one
    files = [*b.copy.rglob("*"), *b.rerun_copy.rglob("*"), *b.report.rglob("*"), *b.logs]
    assert len(files) > 50 and any(p.suffix == ".pkl" for p in b.copy.rglob("*"))
    assert leaks(files) == []
    assert not [t for t in b.printed if PG_PASSWORD in t or S3_SECRET in t]


def test_unreachable_study_database_is_refused_before_ray(s3, postgres, tmp_path,
                                                          monkeypatch):
    """No password anywhere (none in the URL, no PGPASSWORD): refused with one message, exit
    code 2, nothing made in the bucket."""
    _no_password_from_libpq(monkeypatch, tmp_path)
    bucket = s3.create_bucket("refused")
    raw = tiny_spec(f"{bucket}/sweeps", study=postgres.url("postgres"))
    proc = run_cli("submit", str(write_spec(tmp_path / "spec.yaml", raw)), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "study: cannot open the Optuna study database" in proc.stderr
    assert "PGPASSWORD" in proc.stderr and "starting a local Ray" not in proc.stdout
    assert not TrialStore.of(f"{bucket}/sweeps/tiny").keys()
    assert not sweep_path(f"{bucket}/sweeps").exists()




def test_two_node_cluster_keeps_its_trial_store_in_the_bucket(s3, postgres, tmp_path):
    bucket = s3.create_bucket("cluster")
    postgres.create_database("cluster")
    raw = tiny_spec(f"{bucket}/sweeps", trials=2, steps=40, max_concurrent=2,
                    early_stop={"collapse": False}, study=postgres.url("cluster"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "PGPASSWORD": PG_PASSWORD}
    proc = subprocess.run([sys.executable, "-c", TWO_NODES, json.dumps(raw)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes = set(json.loads(proc.stdout.split("NODES ")[1]))
    store = TrialStore.of(f"{bucket}/sweeps/tiny")
    used = {store.read_json(k, CONFIG)["node_id"] for k in store.keys()}
    assert len(nodes) == 2 and used == nodes, f"trials ran on {used}, nodes {nodes}"
    assert len(store_results(f"{bucket}/sweeps/tiny")) == 2
    assert not list(tmp_path.rglob("trials")), "a trial wrote to the local disk"


def test_image_evaluator_is_shared_through_the_bucket(s3, monkeypatch):
    """A sweep in a bucket keeps its one evaluator there; a node without it in its cache
    fetches that copy (and loads it weights-only) rather than training its own."""
    import torch

    from gansweep.analysis import evaluator
    from gansweep.trainers.data import load_dataset

    where = s3.create_bucket("evaluators") + "/sweeps/tiny/evaluators"
    data = load_dataset({"name": "digits", "subset": 300}, image_size=8)
    trained = evaluator.load_or_train(data, where)
    remote = sweep_path(where) / f"{evaluator.cache_key(data)}.pt"
    assert remote.is_file()
    evaluator.clear_memory_cache()
    evaluator.cache_path(data).unlink()  # another node: nothing cached
    monkeypatch.setattr(evaluator, "train", lambda _: pytest.fail("trained a second one"))
    fetched = evaluator.load_or_train(data, where)
    assert evaluator.cache_path(data).read_bytes() == remote.read_bytes()
    for a, b in zip(trained.net.state_dict().values(), fetched.net.state_dict().values()):
        assert torch.equal(a, b)


def test_a_write_that_fails_midway_leaves_nothing_in_the_bucket(s3):
    """pyarrow completes an S3 upload when its stream closes, even after an error: a write
    goes under a temporary key and is copied to its name only once complete, and the
    temporary object is removed when the write fails."""
    import numpy as np
    import pyarrow.fs as pafs

    from gansweep.analysis import durable
    from gansweep.analysis.layout import filesystem

    bucket = s3.create_bucket("torn")
    fs, path = filesystem(f"{bucket}/sweeps/x/trials/k/result.json")
    refused = memoryview(np.arange(1000)[::2])  # the stream refuses it part-way: BufferError
    with pytest.raises(BufferError):
        durable.write(fs, path, refused)
    left = fs.get_file_info(pafs.FileSelector("torn", recursive=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == []
    durable.write(fs, path, b'{"stop_reason": "completed"}')
    assert durable.read(fs, path) == b'{"stop_reason": "completed"}'
    left = fs.get_file_info(pafs.FileSelector("torn", recursive=True))
    assert [i.path for i in left if i.type == pafs.FileType.File] == [path]


def test_the_driver_lock_holds_a_sweep_in_a_bucket(s3):
    import socket

    from gansweep.analysis.lock import DriverLock, SweepBusy

    root = sweep_path(s3.create_bucket("locks") + "/sweeps/held")
    first = DriverLock(root, "gansweep submit").acquire()
    try:
        with pytest.raises(SweepBusy, match=f"{socket.gethostname()}:{os.getpid()}"):
            DriverLock(root, "gansweep resume").acquire()
    finally:
        first.release()
    assert not (root / "driver.lock").exists()
    DriverLock(root, "gansweep resume").acquire().release()
