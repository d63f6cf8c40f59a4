"""Readers while a sweep runs: optuna-dashboard on the study, `gansweep status` every second and
`gansweep report` in a loop, all real processes, against a real sweep with several trials in
flight and its study in SQLite (the default, and the storage where readers and the writer
contend for one file). Nothing fails in the sweep or in a reader, and nothing a reader saw was
a partial file: every ended configuration it showed is exactly as the sweep finally left it.
(The throughput with and without readers is measured by benchmarks/readers.py.)"""
from __future__ import annotations

import json
import math

from gansweep.analysis.layout import META, OPTUNA_DB, UNFINISHED
from gansweep.jobs.status import collect
from tests.conftest import tiny_spec
from tests.faults import Driver, wait_for, write_spec
from tests.readers import LOCKED, Readers

TRIALS, STEPS, EVERY = 6, 400, 40


def _same(seen: float | None, final: float | None) -> bool:
    return (seen is None and final is None) or (seen is not None and final is not None and (
        seen == final or (math.isnan(seen) and math.isnan(final))))


def test_dashboard_status_and_report_while_a_sweep_runs(tmp_path):
    raw = tiny_spec(tmp_path, name="readers", trials=TRIALS, steps=STEPS, report_every=EVERY,
                    max_concurrent=3, resources={"cpu": 0.5}, early_stop={"collapse": False})
    sweep = tmp_path / "readers"
    driver = Driver("submit", str(write_spec(tmp_path / "spec.yaml", raw)),
                    log=tmp_path / "sweep.log")
    wait_for(lambda: (sweep / META).is_file(), "the sweep directory", driver=driver)
    name = json.loads((sweep / META).read_text())["study_name"]
    readers = Readers(str(sweep), f"sqlite:///{sweep / OPTUNA_DB}", name, tmp_path / "report")
    readers.start(study_ready=lambda: (sweep / OPTUNA_DB).is_file())
    rc = driver.wait()
    readers.stop()
    out = driver.output()
    assert rc == 0 and LOCKED not in out, out[-3000:]
    assert not readers.failures, "\n".join(readers.failures)
    statuses = [s for _, s in readers.statuses]
    assert len(statuses) >= 3 and readers.reports and len(readers.dashboard_reads) >= 3
    # the readers ran while the sweep did: several trials in flight, more ending later
    assert max(s["counts"][UNFINISHED] for s in statuses) >= 2
    assert readers.dashboard_reads == sorted(readers.dashboard_reads)
    assert readers.dashboard_reads[0][1] < TRIALS  # the dashboard read the study mid-sweep

    final = {r["key"]: r for r in collect(sweep)["trials"]}
    assert len(final) == TRIALS and all(r["state"] == "completed" for r in final.values())
    ended = [sum(r["state"] != UNFINISHED for r in s["trials"]) for s in statuses]
    assert ended == sorted(ended), ended  # nothing ended ever looked unended again
    for s in statuses:
        for r in s["trials"]:
            f = final[r["key"]]
            if r["state"] == UNFINISHED:  # a whole report row, no later than the end
                assert r["step"] % EVERY == 0 and r["step"] <= f["step"], (r, f)
            else:  # an ended configuration is shown exactly as it was left
                assert (r["state"], r["step"], r["config"]) == (f["state"], f["step"],
                                                                f["config"]), (r, f)
                assert _same(r["metric"], f["metric"]) and _same(r["objective"], f["objective"])
    for rows in readers.reports:
        for key, row in rows.items():
            if row["state"] != UNFINISHED:
                assert row["state"] == final[key]["state"]
                assert float(row["stop_step"]) == final[key]["step"]


def test_status_into_a_pipe_that_closes_early_ends_quietly(tmp_path):
    """`gansweep status DIR --json | head -1`: no traceback, no second error at exit."""
    import shutil
    import subprocess
    import sys

    from tests.conftest import ROOT

    sweep = tmp_path / "old"
    shutil.copytree(ROOT / "tests" / "data" / "sweep-before-namespace", sweep)
    proc = subprocess.run(f"{sys.executable} -m gansweep status {sweep} --json | head -c 1",
                          shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          executable="/bin/bash")
    assert proc.stdout == "{" and proc.stderr == "", proc.stderr


def test_the_command_exits_without_teardown_after_threads_and_exit_handlers(tmp_path):
    """`gansweep` skips the interpreter's teardown (jobs/cli.py, command): what that teardown
    does first still happens, in its order: a thread still running is waited for, then the
    exit handlers run, and the exit code and the output are the command's."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import atexit, sys, threading, time\n"
            "atexit.register(lambda: print('exit handler', flush=True))\n"
            "threading.Thread(target=lambda: (time.sleep(1), print('thread ended'))).start()\n"
            f"sys.argv = ['gansweep', 'status', {str(tmp_path / 'none')!r}]\n"
            "from gansweep.jobs.cli import command\n"
            "command()\n"
            "print('not reached')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "is not a gansweep sweep directory" in proc.stderr
    assert proc.stdout.splitlines() == ["thread ended", "exit handler"], proc.stdout
