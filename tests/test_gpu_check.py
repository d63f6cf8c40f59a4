"""benchmarks/gpu_check.py on a machine without CUDA: every phase says it was skipped and is
rehearsed on the CPU at tiny sizes, so the script cannot rot before a GPU runs it.

The first rehearsal runs as on a freshly provisioned GPU box: a Python with torch and numpy
and nothing else of gansweep's (a virtual environment that sees only those packages: no Ray,
Optuna, scikit-learn, scipy, pyarrow, PyYAML, and gansweep itself not installed). The second
rehearses the sweep phase, which needs them, on a Ray given one logical GPU. A phase that
fails is recorded and the run goes on; one that overruns is killed at its hard cap."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.gpu_check import OUT, TINY, PhaseProcess, Record, run_phase
from tests.conftest import ROOT

no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                             reason="the rehearsal is for CUDA-less machines")
# What a bare GPU box lacks: everything gansweep installs beyond torch and numpy, and gansweep.
NOT_ON_A_BARE_BOX = re.compile(
    r"^(ray|optuna|sklearn|scikit_learn|scipy|pyarrow|pandas|matplotlib|mpl_toolkits|"
    r"sqlalchemy|psycopg|yaml|_yaml|pyyaml|jsonschema|cmaes|gansweep|__editable__)",
    re.IGNORECASE)


def bare_python(tmp_path: Path) -> Path:
    """A virtual environment whose only packages are this one's minus NOT_ON_A_BARE_BOX (seen
    through symlinks, so nothing is installed or downloaded)."""
    view = tmp_path / "site-view"
    view.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.suffix != ".pth" and not NOT_ON_A_BARE_BOX.match(entry.name):
            (view / entry.name).symlink_to(entry)
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "site-view.pth").write_text(f"{view}\n")
    return venv / "bin" / "python"


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RAY_ADDRESS")}
    return {**env, "OMP_NUM_THREADS": "1"}


def rehearse(python: Path, out: Path, *args: str, cwd: Path = ROOT) -> dict:
    proc = subprocess.run([str(python), str(ROOT / "benchmarks" / "gpu_check.py"), "--cpu-only",
                           "--out-dir", str(out), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env=clean_env())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "gpu.json").read_text())


@pytest.mark.slow
@no_cuda
def test_rehearsal_on_a_bare_box_without_ray_optuna_or_gansweep_installed(tmp_path):
    python = bare_python(tmp_path)
    for module in ("ray", "optuna", "sklearn", "yaml", "gansweep"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], cwd=tmp_path,
                               capture_output=True, text=True, env=clean_env())
        assert probe.returncode == 1 and "ModuleNotFoundError" in probe.stderr, module
    before = OUT.stat().st_mtime_ns if OUT.exists() else None
    r = rehearse(python, tmp_path / "out", cwd=tmp_path)
    assert (OUT.stat().st_mtime_ns if OUT.exists() else None) == before
    assert r["finished"] and r["mode"] == "cpu rehearsal" and r["targets"] is None
    assert r["environment"]["ray"] is None and r["environment"]["optuna"] is None
    assert r["environment"]["gansweep_source"] == str(ROOT)  # this checkout, not installed
    phases = r["phases"]
    assert phases["sweep"] == {"skipped": "ray and optuna not importable here: the sweep phase "
                                          "runs where gansweep is installed with its "
                                          "dependencies"}
    rehearsed = {name: p["rehearsal_on_cpu"] for name, p in phases.items() if name != "sweep"}
    assert set(rehearsed) == {"gan", "share", "som", "checkpoint"}
    assert all(phases[n]["skipped"] == "no CUDA device" for n in rehearsed)
    assert not [n for n, p in rehearsed.items() if "error" in p], rehearsed

    gan = rehearsed["gan"]["families"]
    assert {"dcgan", "wgan", "wgan-gp", "gan"} <= set(gan)
    for name, f in gan.items():
        assert f["fp32"]["steps"] > 0 and f["fp32"]["losses_finite"], name
        assert f["amp"]["losses_finite"] and f["amp_ratio"] > 0, name
        assert ("channels_last" in f) == (name != "gan"), name  # only conv families
    share = rehearsed["share"]
    assert share["alone"]["processes"] == 1 and share["four"]["processes"] == 4
    assert len(share["four"]["steps_per_s_each"]) == 4 and share["four_vs_alone_total"] > 0
    som = rehearsed["som"]
    assert som["compared_at_epoch"] == r["sizes"]["som_epochs"] and som["same_result"]
    for name, ck in rehearsed["checkpoint"]["families"].items():
        assert ck["resumed_step_ok"] and ck["state_identical_after_each_load"], (name, ck)
    assert r["wall_s"] < 120


@pytest.mark.slow
@no_cuda
def test_rehearsal_of_the_sweep_phase_on_a_logical_gpu(tmp_path):
    r = rehearse(Path(sys.executable), tmp_path / "out", "--phases", "sweep")
    sweep = r["phases"]["sweep"]["rehearsal_on_cpu"]
    assert "error" not in sweep, sweep
    assert sweep["logical_gpu"] and sweep["same_configurations"]
    for label, gpu in (("quarter", 0.25), ("whole", 1.0)):
        arm = sweep["arms"][label]
        assert arm["resources"]["gpu"] == gpu and arm["stopped"] is None
        assert arm["finished"] == arm["trials_asked"] == len(arm["trials"])
        # Ray handed every trial the one GPU; the rehearsal switch let it train on the CPU
        assert all(t["gpu_ids"] == ["0"] and t["device"] == "cpu" for t in arm["trials"])
    assert sweep["arms"]["whole"]["max_training_at_once"] == 1


def test_a_phase_past_its_hard_cap_is_killed_with_its_processes(tmp_path, monkeypatch):
    import benchmarks.gpu_check as gpu_check

    monkeypatch.setattr(gpu_check, "PHASE_GRACE_S", 2.0)
    # four trainer processes told to train for a minute: far past a 6 s deadline
    phase = PhaseProcess("share", replace(TINY, share_s=60.0), "cpu", tmp_path,
                         {**os.environ, "OMP_NUM_THREADS": "1"})
    t0 = time.time()
    result = phase.run(t0 + 6)
    assert time.time() - t0 < 6 + 2 + 12  # the grace, then SIGTERM's and SIGKILL's waits
    assert result["error"].startswith("killed 2 s past its deadline (its hard cap)")
    assert result["job"]["seconds"] == 60.0  # what it had handed back is kept
    with pytest.raises(ProcessLookupError):  # the phase's spawned trainers went with it
        os.killpg(phase.proc.pid, 0)


def test_a_failing_phase_is_recorded_and_the_run_goes_on(tmp_path):
    record = Record(tmp_path / "gpu.json", {"mode": "test"})
    end = time.time() + 60

    def broken(deadline):
        raise RuntimeError("CUDA error: out of memory")

    run_phase(record, "first", broken, 30, end)
    run_phase(record, "second", lambda deadline: {"deadline_within_cap": deadline <= end},
              30, end)
    run_phase(record, "third", lambda deadline: {}, 30, time.time())  # budget spent
    saved = json.loads((tmp_path / "gpu.json").read_text())["phases"]
    assert saved["first"]["error"] == "RuntimeError: CUDA error: out of memory"
    assert saved["second"]["deadline_within_cap"] is True
    assert saved["third"] == {"skipped": "time budget spent"}


def test_the_som_errors_without_scipy_agree_with_the_analysis_package():
    from benchmarks.gpu_models import map_errors
    from gansweep.analysis.metrics import som_scores

    gen = np.random.default_rng(1)
    weights = gen.normal(size=(5, 6, 3)).astype(np.float32)
    x = gen.normal(size=(500, 3)).astype(np.float32)
    ours, theirs = map_errors(weights, x), som_scores(weights, x)
    assert ours["quantization_error"] == pytest.approx(theirs["quantization_error"], rel=1e-9)
    assert ours["topographic_error"] == theirs["topographic_error"] > 0
