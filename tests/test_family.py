"""A new trainer family needs its own file and one registry line, nothing else: a stand-in
family (tests/standin_family.py) trains through `gansweep train`, sweeps on a real Ray,
shows in status and gets a report, with no other module naming it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gansweep.analysis.report import write_report
from gansweep.jobs.cli import main
from gansweep.jobs.status import collect
from tests import standin_family
from tests.conftest import ROOT


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(standin_family.registry.TRAINERS, standin_family.NAME,
                        (standin_family.__name__, "GaussFit"))


def test_gansweep_train_runs_a_registered_family(registered, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", standin_family.NAME, "--dataset", "gauss1d", "--steps", "200",
                 "--report-every", "50", "--set", "lr_g=0.1", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    samples = np.load(out / "samples.npy")
    assert samples.shape == (2500, 1) and abs(samples.mean() - 4.0) < 0.5  # gauss1d: N(4, .5)


SWEEP = """
import os, sys, ray
from tests.standin_family import NAME, register
register()
from gansweep.jobs.submit import local_ray
local_ray(num_cpus=2,
          runtime_env={"worker_process_setup_hook": "tests.standin_family.register",
                       "env_vars": {"PYTHONPATH": os.getcwd()}})
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.submit import submit
submit(parse_spec({"name": "standin", "trainer": NAME, "dataset": "gauss1d", "trials": 3,
                   "steps": 60, "report_every": 20, "metric": "coverage",
                   "space": {"lr_g": {"low": 0.01, "high": 0.2, "log": True}},
                   "seeds": 1, "storage": sys.argv[1]}), log=lambda *_: None)
"""


def test_a_registered_family_sweeps_and_reports(registered, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp_path / "standin"
    s = collect(root)
    assert s["counts"]["completed"] == 3 and s["best"]["metric"] > 0.5
    result = json.loads(next((root / "trials").glob("*/result.json")).read_text())
    assert "mode_diversity" in result["final"]  # the collapse signal the base class names
    index = write_report([root], tmp_path / "report")
    assert "samples of the top" in index.read_text()


def test_trials_that_fail_before_their_first_report_show_as_failed(registered, tmp_path):
    """The workers cannot import the family (no PYTHONPATH to the tests): every trial dies in
    its setup, before it writes anything. The sweep says so with the first failure's own
    message, and each configuration is still listed, as failed."""
    script = SWEEP.replace('"env_vars": {"PYTHONPATH": os.getcwd()}', '"env_vars": {}')
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "SweepFailed: all 3 run(s) failed; the first: " in proc.stderr, proc.stderr[-3000:]
    s = collect(tmp_path / "standin")
    assert s["configurations"] == 3 and s["counts"]["failed"] == 3
    assert all(0.01 <= t["config"]["lr_g"] <= 0.2 for t in s["trials"])
