"""benchmarks/gpu_check.py on a machine without CUDA: every phase says it was skipped and is
rehearsed on the CPU at tiny sizes (the sweep on a Ray given one logical GPU), so the script
cannot rot before a GPU runs it; a failing phase is recorded and the run goes on."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from benchmarks.gpu_check import OUT, Record, run_phase
from tests.conftest import ROOT


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the rehearsal is for CUDA-less machines")
def test_cpu_rehearsal_runs_every_phase(tmp_path):
    out = tmp_path / "gpu.json"
    before = OUT.stat().st_mtime_ns if OUT.exists() else None
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-only",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (OUT.stat().st_mtime_ns if OUT.exists() else None) == before
    r = json.loads(out.read_text())
    assert r["finished"] and r["mode"] == "cpu rehearsal" and r["targets"] is None
    assert {"python", "torch", "ray", "device"} <= set(r["environment"])
    phases = r["phases"]
    assert all(p["skipped"] == "no CUDA device" for p in phases.values()), phases

    gan = phases["gan"]["rehearsal_on_cpu"]["families"]
    assert {"dcgan", "wgan", "wgan-gp", "gan"} <= set(gan)
    for name, f in gan.items():
        assert f["fp32"]["steps"] > 0 and f["fp32"]["losses_finite"], name
        assert f["amp"]["losses_finite"] and f["amp_ratio"] > 0, name
        ck = f["checkpoint"]
        assert ck["resumed_step_ok"] and ck["state_identical_after_each_load"], (name, ck)
        assert ("channels_last" in f) == (name != "gan"), name  # only conv families

    som = phases["som"]["rehearsal_on_cpu"]
    assert som["compared_at_epoch"] == r["sizes"]["som_epochs"] and som["same_result"]

    sweep = phases["sweep"]["rehearsal_on_cpu"]
    assert sweep["logical_gpu"] and sweep["same_configurations"]
    for label, gpu in (("quarter", 0.25), ("whole", 1.0)):
        arm = sweep["arms"][label]
        assert arm["resources"]["gpu"] == gpu and arm["stopped"] is None
        assert arm["finished"] == arm["trials_asked"] == len(arm["trials"])
        # Ray handed every trial the one GPU; without CUDA the trainer stayed on the CPU
        assert all(t["gpu_ids"] == ["0"] and t["device"] == "cpu" for t in arm["trials"])
    assert sweep["arms"]["whole"]["max_training_at_once"] == 1


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
