"""One driver per sweep: real `gansweep` processes racing, holding, and killed with SIGKILL."""
from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
import time

import pytest

from gansweep.analysis import liveness
from gansweep.analysis.lock import LOCK, DriverLock, SweepBusy
from tests.conftest import run_cli, tiny_spec
from tests.faults import Driver, results, wait_for, write_spec


def _studies(sweep) -> list[str]:
    with sqlite3.connect(sweep / "optuna.db") as db:
        return [r[0] for r in db.execute("select study_name from studies")]


def test_two_submits_of_one_new_spec_at_once_exactly_one_wins(tmp_path):
    spec = write_spec(tmp_path / "s.yaml", tiny_spec(tmp_path / "store", name="race",
                                                     trials=2))
    drivers = [Driver("submit", str(spec), log=tmp_path / f"d{i}.log") for i in range(2)]
    codes = sorted(d.wait() for d in drivers)
    out = "\n".join(d.output() for d in drivers)
    assert codes == [0, 2], out[-4000:]
    loser = next(d for d in drivers if d.proc.returncode == 2).output()
    assert ("is being run by" in loser or "already exists" in loser), loser
    assert "Traceback" not in loser
    sweep = tmp_path / "store" / "race"
    assert len(_studies(sweep)) == 1
    assert len(results(sweep)) == 2
    assert not (sweep / LOCK).exists()  # the winner let go when it ended


def test_a_live_driver_refuses_a_second_and_a_killed_one_is_taken_over(tmp_path):
    raw = tiny_spec(tmp_path / "store", name="held", trials=2, steps=2000, report_every=20,
                    max_concurrent=1)
    spec = write_spec(tmp_path / "s.yaml", raw)
    sweep = tmp_path / "store" / "held"
    first = Driver("submit", str(spec), log=tmp_path / "first.log")
    try:
        wait_for(lambda: list(sweep.glob("trials/*/metrics.csv")), "a first report",
                 driver=first)
        # Stopped, not ended: on a loaded machine it could otherwise finish the whole sweep
        # before the second driver (an interpreter, torch) reaches the lock.
        first.proc.send_signal(signal.SIGSTOP)
        holder = json.loads((sweep / LOCK).read_text())
        assert holder["pid"] == first.proc.pid and holder["host"] == socket.gethostname()

        second = run_cli("resume", str(sweep), check=False, timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"is being run by {socket.gethostname()}:{first.proc.pid}" in second.stderr
        assert "resume --force" in second.stderr and "Traceback" not in second.stderr
        runs = json.loads((sweep / "sweep.json").read_text())["runs"]
        assert len(runs) == 1  # the refused driver wrote nothing
    finally:
        first.kill()
    # SIGKILL: no release; the pid is gone, so the next driver takes over and says why
    assert json.loads((sweep / LOCK).read_text())["pid"] == first.proc.pid
    third = run_cli("resume", str(sweep), check=False, timeout=300)
    assert third.returncode == 0, third.stdout + third.stderr
    assert "taking over sweep" in third.stdout and "is gone" in third.stdout, third.stdout
    assert len(results(sweep)) == 2
    assert not (sweep / LOCK).exists()


def test_a_holder_on_another_host_is_dead_only_after_its_heartbeat_goes_stale(tmp_path):
    (tmp_path / "s").mkdir()
    now = time.time()
    record = {"host": "node-elsewhere", "pid": 1, "command": "gansweep resume",
              "token": "t", "started": now - 600, "heartbeat": now - 5}
    (tmp_path / "s" / LOCK).write_text(json.dumps(record))
    with pytest.raises(SweepBusy, match="node-elsewhere:1"):
        DriverLock(tmp_path / "s", "test").acquire()
    record["heartbeat"] = now - liveness.STALE_S - 1
    (tmp_path / "s" / LOCK).write_text(json.dumps(record))
    said: list[str] = []
    lock = DriverLock(tmp_path / "s", "test", log=said.append).acquire()
    assert "last heartbeat" in said[0]
    assert json.loads((tmp_path / "s" / LOCK).read_text())["token"] == lock.record["token"]
    lock.release()
    assert not (tmp_path / "s" / LOCK).exists()


def test_force_takes_a_live_holders_lock(tmp_path):
    (tmp_path / "s").mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        record = {**liveness.me(), "pid": sleeper.pid, "pid_start":
                  liveness.process_start(sleeper.pid), "token": "t", "started": time.time(),
                  "heartbeat": time.time()}
        (tmp_path / "s" / LOCK).write_text(json.dumps(record))
        with pytest.raises(SweepBusy):
            DriverLock(tmp_path / "s", "test").acquire()
        said: list[str] = []
        DriverLock(tmp_path / "s", "test", force=True, log=said.append).acquire().release()
        assert "--force" in said[0]
    finally:
        sleeper.kill()


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(tmp_path):
    (tmp_path / "s").mkdir()
    record = {**liveness.me(), "pid_start": "1", "token": "t",  # our pid, another start
              "started": time.time(), "heartbeat": time.time()}
    (tmp_path / "s" / LOCK).write_text(json.dumps(record))
    said: list[str] = []
    DriverLock(tmp_path / "s", "test", log=said.append).acquire().release()
    assert "another process" in said[0]


def test_a_lease_from_another_driver_run_waits_while_its_holder_lives(tmp_path):
    """A trial of a killed driver may still train on a cluster that outlives it: its lease is
    taken over only once its process is gone, not because the run id differs."""
    import threading

    from gansweep.analysis.layout import LEASE, TrialStore

    store = TrialStore(str(tmp_path / "trials"))
    holder = subprocess.Popen(["sleep", "60"])
    try:
        store.write_json("k", LEASE, {**liveness.me(), "pid": holder.pid,
                                      "pid_start": liveness.process_start(holder.pid),
                                      "run_id": "old-run", "trial_id": "t-old",
                                      "time": time.time()})
        got: list[bool] = []
        claimer = threading.Thread(target=lambda: got.append(store.claim("k", "new", "t-new")))
        claimer.start()
        claimer.join(timeout=3)
        assert claimer.is_alive() and not got  # the holder lives: wait
        holder.kill()
        holder.wait()
        claimer.join(timeout=10)
        assert got == [True]
        assert store.read_json("k", LEASE)["trial_id"] == "t-new"
    finally:
        holder.kill()
