"""Interrupted sweeps: real SIGKILL/SIGINT of the driver, a killed trial process, a lost node,
corrupted checkpoints, edited specs, full and read-only disks."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import yaml

from gansweep.jobs.spec import parse_spec
from gansweep.jobs.status import collect
from gansweep.jobs.submit import resume, submit
from tests.conftest import ROOT, run_cli, tiny_spec
from tests.faults import (
    Driver,
    planted_checkpoint,
    results,
    running,
    runs_code_when_fully_unpickled,
    store_steps,
    tune_reports,
    wait_for,
    write_spec,
)

TRIALS, STEPS, EVERY = 4, 100, 10


def fault_spec(tmp_path, **changes):
    return tiny_spec(tmp_path, trials=TRIALS, steps=STEPS, report_every=EVERY,
                     early_stop={"collapse": False}, **changes)


def assert_complete_and_unrepeated(sweep, finished_before: dict, resumed_at: dict,
                                   runs: int = TRIALS, configurations: int | None = TRIALS):
    final = results(sweep)
    # exactly `trials` distinct configurations (one run each unless seeds race), every run
    # to its end
    assert len(final) == runs
    assert configurations is None or collect(sweep)["configurations"] == configurations
    assert all(r["stop_reason"] == "completed" and r["stop_step"] == STEPS
               for r in final.values())
    # what had finished before a kill is there once, unchanged
    for key, r in finished_before.items():
        assert final[key] == r
    # no report interval was trained twice, in any driver run
    counts = collections.Counter(tune_reports(sweep))
    assert not [kv for kv, n in counts.items() if n > 1], counts
    # every history is whole: one row per interval, no gaps, no repeats
    for key, steps in store_steps(sweep).items():
        assert steps == list(range(EVERY, STEPS + 1, EVERY)), (key, steps)
    # a configuration running at a kill continued from its last checkpoint, so at most the
    # interval in progress was lost
    for key, step in resumed_at.items():
        assert final[key]["resumed_from_step"] >= step, (key, final[key], step)


def kill_at_stages(spec, sweep, stages, tmp_path, after_kill=None) -> tuple[dict, dict]:
    """`gansweep submit`, SIGKILLed at each stage's condition and resumed; the last resume
    runs to its end. Returns what had finished before a kill and where running ones stood.
    `after_kill(i)` looks at the sweep as a kill left it, before the resume. A stage may add
    how often its condition is polled, for a kill that must land in a narrow window."""
    finished_before, resumed_at = {}, {}
    driver = Driver("submit", str(spec), log=tmp_path / "run0.log")
    for i, (what, cond, *poll) in enumerate(stages):
        wait_for(cond, what, driver=driver, poll=(poll or [0.1])[0])
        driver.kill(signal.SIGKILL)
        finished_before.update(results(sweep))
        resumed_at.update(running(sweep))
        if after_kill:
            after_kill(i)
        driver = Driver("resume", str(sweep), log=tmp_path / f"run{i + 1}.log")
    assert driver.wait() == 0, driver.output()[-3000:]
    return finished_before, resumed_at


def test_sigkill_at_several_points_of_a_race_under_a_budget_then_resume(tmp_path):
    """Seeds and a step budget: killed as the first run starts, while a configuration's second
    seed trains (mid-run: it has checkpoints), and once more runs ended; each time resumed.
    Every (configuration, seed) runs once to its end, none repeated, histories whole, running
    ones continued from their checkpoints, the budget spent exactly (no step counted twice),
    the races kept: seeds run in order, and the study holds one COMPLETE trial per
    configuration, none RUNNING. (One sweep for every kill point: each driver start costs an
    interpreter, torch and a Ray.)"""
    import optuna

    sweep = tmp_path / "tiny"
    raw = fault_spec(tmp_path, seeds={"count": 2, "top": 1}, budget={"steps": 7 * STEPS})
    del raw["trials"]
    spec = write_spec(tmp_path / "spec.yaml", raw)

    def second_seed_started():
        return any(json.loads(p.read_text())["seed"] == 1 and p.parent.name in running(sweep)
                   for p in sweep.glob("trials/*/config.json"))

    def interrupted_race_still_ranks(i):
        """A configuration whose second seed the kill interrupted ranks by the seed it
        ended, and status returns the best of those (not a configuration that lost)."""
        if i != 1:
            return
        s = collect(sweep)
        racing = [c for c in s["ranking"] if c["state"] == "unfinished" and c["seeds"] == 1]
        assert racing and all(c["rank"] for c in racing), s["ranking"]
        ranked = [c for c in s["ranking"] if c["rank"]]
        if not any(c["judged_on_all_seeds"] for c in ranked):  # modes: higher wins
            assert s["best"]["metric"] == max(c["metric"] for c in ranked)
        out = run_cli("status", str(sweep)).stdout
        assert f"config {s['best']['key']}" in out

    finished_before, resumed_at = kill_at_stages(
        spec, sweep, [("early: first run started",
                       lambda: list(sweep.glob("trials/*/config.json"))),
                      ("a second seed training", second_seed_started),
                      ("more runs ended", lambda: len(results(sweep)) >= 5)], tmp_path,
        after_kill=interrupted_race_still_ranks)
    assert_complete_and_unrepeated(sweep, finished_before, resumed_at, runs=7,
                                   configurations=None)
    assert resumed_at, "no kill landed while a run had a checkpoint"
    assert sum(r["stop_step"] for r in results(sweep).values()) == 7 * STEPS  # the budget
    s = collect(sweep)
    assert all(c["seed_list"] == list(range(len(c["seed_list"]))) for c in s["ranking"])
    assert any(len(c["seed_list"]) == 2 for c in s["ranking"])
    meta = json.loads((sweep / "sweep.json").read_text())
    study = optuna.load_study(study_name=meta["study_name"],
                              storage=f"sqlite:///{sweep / 'optuna.db'}")
    states = collections.Counter(t.state.name for t in study.trials)
    assert states["RUNNING"] == 0 and states["COMPLETE"] == s["configurations"], states


def test_sigkill_mid_revival_then_resume(tmp_path):
    """`revive`: three runs pause (collapse) at step 30 of 100; two revivals of 70 steps fill
    the 230-step budget. Killed while a revival trains, then resumed: the revival continues
    from its checkpoint with detection still off. Killed again the moment a revival wrote its
    result, before the driver told Optuna of it, then resumed: the next driver tells it. Every
    step is counted once (the budget spent exactly), no report trains twice, and the study
    holds each revival once."""
    import optuna

    from gansweep.jobs.search import REVIVED_ATTR

    sweep = tmp_path / "tiny"
    raw = {**fault_spec(tmp_path, budget={"steps": 230}), "trials": 3,
           "early_stop": {"collapse": {"threshold": 1.0, "patience": 1, "grace_steps": 30,
                                       "revive": True}}}
    spec = write_spec(tmp_path / "spec.yaml", raw)

    def revival_past_its_pause():
        return any((sweep / "trials" / k / "revived.json").exists() and v[-1] >= 50
                   for k, v in running(sweep).items() for v in [store_steps(sweep)[k]])

    reviving: set[str] = set()
    # revivals a kill interrupted past their pause, and the step each stood at: a run still in
    # its first 30 steps at a kill (under load one can be) may be revived later, and is not one
    mid_revival: dict[str, int] = {}

    def after_kill(i):
        mid_revival.update({k: s for k, s in running(sweep).items()
                            if s > 30 and (sweep / "trials" / k / "revived.json").exists()})
        if i == 0:  # the revivals not ended yet: watched for their result
            reviving.update(k for k in running(sweep)
                            if (sweep / "trials" / k / "revived.json").exists())
            assert reviving
        else:  # the kill landed before the driver told the study of the revival that ended
            ended = [k for k in reviving if (sweep / "trials" / k / "result.json").exists()]
            told = sum(REVIVED_ATTR in t.user_attrs for t in load_study().trials)
            revived_results = sum(bool(r.get("revived")) for r in results(sweep).values())
            assert ended and told < revived_results, (ended, told, revived_results)

    def a_revival_result_written():
        return any((sweep / "trials" / k / "result.json").exists() for k in reviving)

    def load_study():
        meta = json.loads((sweep / "sweep.json").read_text())
        return optuna.load_study(study_name=meta["study_name"],
                                 storage=f"sqlite:///{sweep / 'optuna.db'}")

    kill_at_stages(
        spec, sweep, [("a revival training", revival_past_its_pause),
                      ("a revival's result written", a_revival_result_written, 0.001)],
        tmp_path, after_kill=after_kill)
    final = results(sweep)
    revived = {k: r for k, r in final.items() if r.get("revived")}
    assert len(final) == 3 and len(revived) == 2
    assert sum(r["stop_step"] for r in final.values()) == 230 == collect(sweep)["steps_spent"]
    for key, steps in store_steps(sweep).items():
        planned = STEPS if key in revived else 30
        assert steps == list(range(EVERY, planned + 1, EVERY)), (key, steps)
    assert mid_revival, "the kill did not land while a revival trained"
    # each continued from its checkpoint with its detector still off (threshold 1.0 would
    # stop it at once)
    for key, step in mid_revival.items():
        assert revived[key]["resumed_from_step"] >= step
        assert revived[key]["stop_reason"] == "completed"
    counts = collections.Counter(tune_reports(sweep))
    assert not [kv for kv, n in counts.items() if n > 1], counts
    study = load_study()
    states = collections.Counter(t.state.name for t in study.trials)
    assert states["RUNNING"] == 0 and states["COMPLETE"] == 5, states
    assert sum(REVIVED_ATTR in t.user_attrs for t in study.trials) == 2


def test_sigint_stops_cleanly_and_prints_the_resume_command(ray_local, tmp_path):
    sweep = tmp_path / "tiny"
    spec = write_spec(tmp_path / "spec.yaml", fault_spec(tmp_path))
    driver = Driver("submit", str(spec), log=tmp_path / "run0.log")
    wait_for(lambda: running(sweep), "a trial with a checkpoint", driver=driver)
    driver.kill(signal.SIGINT)
    out = driver.output()
    assert driver.proc.returncode == 130, out[-3000:]
    assert f"gansweep resume {sweep}" in out
    finished_before, resumed_at = results(sweep), running(sweep)
    driver.clear()
    resume(sweep, log=lambda *_: None)
    assert_complete_and_unrepeated(sweep, finished_before, resumed_at)


def test_killed_trial_process_is_retried_from_its_checkpoint(ray_local, tmp_path):
    spec = parse_spec(fault_spec(tmp_path, max_failures=2))
    sweep = tmp_path / "tiny"
    victim = {}

    def kill_a_trial():
        key = wait_for(lambda: next((k for k, s in running(sweep).items() if s >= 30), None),
                       "a trial three reports in")
        lease = json.loads((sweep / "trials" / key / "lease.json").read_text())
        victim.update(key=key, step=running(sweep)[key])
        os.kill(lease["pid"], signal.SIGKILL)

    killer = threading.Thread(target=kill_a_trial)
    killer.start()
    submit(spec, log=lambda *_: None)
    killer.join()
    final = results(sweep)
    assert len(final) == TRIALS
    r = final[victim["key"]]
    assert r["stop_reason"] == "completed" and r["resumed_from_step"] >= victim["step"] > 0
    assert store_steps(sweep)[victim["key"]] == list(range(EVERY, STEPS + 1, EVERY))


LOSE_A_NODE = """
import json, sys, threading, time
from pathlib import Path
import ray
from ray.cluster_utils import Cluster
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.submit import submit
from tests.faults import running

raw = json.loads(sys.argv[1]); sweep = Path(raw["storage"]) / raw["name"]
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
worker = cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False)
lost = {}

def remove_worker():
    while True:
        for key, step in running(sweep).items():
            rec = json.loads((sweep / "trials" / key / "config.json").read_text())
            if rec["node_id"] == worker.node_id and step >= 20:
                lost.update(key=key, step=step)
                cluster.remove_node(worker)
                return
        time.sleep(0.1)

t = threading.Thread(target=remove_worker, daemon=True); t.start()
submit(parse_spec(raw), log=lambda *_: None)
print("LOST " + json.dumps({**lost, "head": cluster.head_node.node_id}))
ray.shutdown(); cluster.shutdown()
"""


def test_lost_worker_node_trials_resume_elsewhere(tmp_path):
    raw = fault_spec(tmp_path, max_failures=3)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", LOSE_A_NODE, json.dumps(raw)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lost = json.loads(proc.stdout.split("LOST ")[1])
    final = results(tmp_path / "tiny")
    assert len(final) == TRIALS and all(r["stop_reason"] == "completed" for r in final.values())
    moved = final[lost["key"]]
    assert moved["node_id"] == lost["head"] and moved["resumed_from_step"] >= lost["step"]


# ---- bad input and damaged state: refused with a message, stored results untouched ---------

@pytest.fixture(scope="module")
def done_sweep(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("done")
    raw = tiny_spec(tmp, trials=2, steps=20, report_every=10, early_stop={"collapse": False})
    spec_path = write_spec(tmp / "spec.yaml", raw)
    submit(parse_spec(raw), log=lambda *_: None)
    return tmp / "tiny", spec_path


def test_edited_spec_is_refused(done_sweep):
    sweep, _ = done_sweep
    before = results(sweep)
    frozen = sweep / "spec.yaml"
    original = frozen.read_text()
    try:
        raw = yaml.safe_load(original)
        raw["steps"] = 999
        frozen.write_text(yaml.safe_dump(raw))
        proc = run_cli("resume", str(sweep), check=False)
        assert proc.returncode == 2 and "edited after submission" in proc.stderr
    finally:
        frozen.write_text(original)
    assert results(sweep) == before


def test_directory_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    proc = run_cli("resume", str(tmp_path), check=False)
    assert proc.returncode == 2 and "not a gansweep sweep directory" in proc.stderr
    proc = run_cli("status", str(tmp_path), check=False)
    assert proc.returncode == 2


def test_same_name_different_spec_is_refused(done_sweep, tmp_path):
    sweep, spec_path = done_sweep
    raw = yaml.safe_load(spec_path.read_text())
    raw["steps"] = 30
    proc = run_cli("submit", str(write_spec(tmp_path / "other.yaml", raw)), check=False)
    assert proc.returncode == 2 and "gansweep resume" in proc.stderr


def test_corrupted_checkpoint_is_kept_aside_and_retrained(done_sweep):
    sweep, _ = done_sweep
    before = results(sweep)
    key = sorted(before)[0]
    (sweep / "trials" / key / "result.json").unlink()  # as if killed before it finished
    (sweep / "trials" / key / "state.pt").write_bytes(b"\x00garbage" * 100)
    said: list[str] = []
    resume(sweep, log=said.append)
    after = results(sweep)
    assert after[key]["stop_reason"] == "completed" and after[key]["resumed_from_step"] == 0
    aside = list((sweep / "trials" / key).glob("state.pt.damaged-*"))
    assert aside and aside[0].read_bytes().startswith(b"\x00garbage")
    # in the driver's output and in status, not only in a worker's log
    assert any(f"damaged: state.pt of run {key}" in line for line in said), said
    assert [n["key"] for n in collect(sweep)["damaged"] if n["file"] == "state.pt"] == [key]
    for other in set(before) - {key}:
        assert after[other] == before[other]


def test_a_torn_result_is_reported_set_aside_and_trained_again(done_sweep):
    """A result.json cut short (a crash before writes were durable): status and report say
    which run is damaged and what will happen; resume sets it aside, says so, retrains it."""
    sweep, _ = done_sweep
    before = results(sweep)
    key = sorted(before)[0]
    path = sweep / "trials" / key / "result.json"
    torn = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(torn)
    # the newest result is the one a crash tears: the driver's summary does not have it yet
    summary = json.loads((sweep / "summary.json").read_text())
    del summary["runs"][key]
    (sweep / "summary.json").write_text(json.dumps(summary))
    status = run_cli("status", str(sweep))
    assert f"damaged: result.json of run {key}" in status.stdout, status.stdout
    assert "not yet set aside" in status.stdout and "next resume trains it" in status.stdout
    said: list[str] = []
    resume(sweep, log=said.append)
    assert any(f"damaged: result.json of run {key}" in line for line in said), said
    after = results(sweep)
    assert after[key]["stop_reason"] == before[key]["stop_reason"]
    aside = list(path.parent.glob("result.json.damaged-*"))
    assert [p.read_bytes() for p in aside] == [torn]
    for other in set(before) - {key}:
        assert after[other] == before[other]
    status = json.loads(run_cli("status", str(sweep), "--json").stdout)
    assert [(n["key"], n["kept_as"]) for n in status["damaged"]
            if n["file"] == "result.json"] == [(key, aside[0].name)]


def test_planted_checkpoint_is_refused_without_running_it(done_sweep, tmp_path):
    """Anyone who can write to a shared sweep directory could plant a pickle that runs code when
    loaded in full: the trial refuses it (weights-only loading), keeps it aside like any
    unreadable checkpoint and trains that configuration from step 0."""
    sweep, _ = done_sweep
    before = results(sweep)
    key = sorted(before)[0]
    marker = tmp_path / "code-ran"
    planted = planted_checkpoint(marker)
    assert runs_code_when_fully_unpickled(planted, marker)  # the plant is real
    (sweep / "trials" / key / "result.json").unlink()
    (sweep / "trials" / key / "state.pt").write_bytes(planted)
    resume(sweep, log=lambda *_: None)
    assert not marker.exists()
    after = results(sweep)
    assert after[key]["stop_reason"] == "completed" and after[key]["resumed_from_step"] == 0
    assert [p.read_bytes() for p in (sweep / "trials" / key).glob("state.pt.damaged-*")
            if p.read_bytes() == planted]
    for other in set(before) - {key}:
        assert after[other] == before[other]


def _mount_tmpfs(path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("case", ["full", "read-only"])
def test_full_or_read_only_disk_is_refused_before_ray(done_sweep, tmp_path, case):
    sweep, _ = done_sweep
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "size=8m"):
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        subprocess.run(["cp", "-a", str(sweep), str(mnt)], check=True)
        copy = mnt / sweep.name
        before = results(copy)
        if case == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
            fragment = "not writable"
        else:
            fragment = "MiB free"
        t0 = time.monotonic()
        proc = run_cli("resume", str(copy), check=False)
        assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr
        assert "starting a local Ray" not in proc.stdout
        assert time.monotonic() - t0 < 60
        assert results(copy) == before
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_killed_after_its_last_checkpoint_finishes_without_training(done_sweep):
    """A trial killed between its final checkpoint and its result: resume writes the result
    from the checkpoint and trains nothing."""
    sweep, _ = done_sweep
    before = results(sweep)
    key = sorted(before)[-1]
    history = (sweep / "trials" / key / "metrics.csv").read_text()
    (sweep / "trials" / key / "result.json").unlink()
    resume(sweep, log=lambda *_: None)
    after = results(sweep)[key]
    assert after["stop_reason"] == "completed"
    assert after["resumed_from_step"] == after["stop_step"] == before[key]["stop_step"]
    assert after["final"] == before[key]["final"]
    assert (sweep / "trials" / key / "metrics.csv").read_text() == history


def test_a_record_that_exists_but_cannot_be_read_is_reported_not_taken_for_absent(done_sweep):
    """Only "not found" means absent: a read that keeps failing (here a folder where
    result.json should be, which every read refuses) is retried, then reported, and status
    exits 1 without a traceback instead of calling a finished run unfinished."""
    sweep, _ = done_sweep
    key = sorted(results(sweep))[-1]
    path = sweep / "trials" / key / "result.json"
    kept = path.read_bytes()
    summary = (sweep / "summary.json").read_bytes()
    (sweep / "summary.json").unlink()
    path.unlink()
    path.mkdir()
    try:
        proc = run_cli("status", str(sweep), check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "could not be read" in proc.stderr and str(path) in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        path.rmdir()
        path.write_bytes(kept)
        (sweep / "summary.json").write_bytes(summary)
