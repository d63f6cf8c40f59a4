"""A trial is placed by the GPUs Ray assigned it: none, the CPU even on a GPU node; some, CUDA,
or a failure at once saying why CUDA cannot be used (never a silent CPU run holding the GPU).

This machine has no GPU, so a GPU node is simulated where one is needed: Ray is given one
logical GPU, and for "a GPU node" its workers are told torch sees CUDA (a worker setup hook)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from gansweep.trainers.base import CudaUnusable, pick_device
from tests.conftest import ROOT, tiny_spec

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def test_no_gpu_assigned_means_the_cpu_even_where_cuda_is_visible(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU node, simulated
    assert pick_device(gpus=[]) == torch.device("cpu")
    assert pick_device("cpu", gpus=["0"]) == torch.device("cpu")  # an explicit choice wins
    # No scheduler (gansweep train): what the process sees, unless it is told to hide it.
    assert pick_device() == torch.device("cuda")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert pick_device() == torch.device("cpu")


@no_cuda
def test_an_assigned_gpu_torch_cannot_use_is_an_error_naming_why():
    with pytest.raises(CudaUnusable) as err:
        pick_device(gpus=["0"])
    message = str(err.value)
    assert message.startswith("resources.gpu: this trial was given GPU 0")
    assert torch.__version__ in message and "resources.gpu: 0" in message
    if torch.version.cuda is None:
        assert "CPU-only build" in message


# Runs in a fresh process: its Ray has a logical GPU (and maybe a setup hook), which the
# session's shared Ray must not get.
SCRIPT = textwrap.dedent("""
    import json, sys
    import ray
    from gansweep.jobs.spec import parse_spec
    from gansweep.jobs.submit import local_ray, submit

    def pretend_cuda():
        # the worker's torch believes it sits on a GPU node; no CUDA work can actually run
        import torch
        torch.cuda.is_available = lambda: True
        torch.cuda.device_count = lambda: 1

    raw, pretend = json.loads(sys.argv[1]), sys.argv[2] == "1"
    local_ray(num_cpus=2, num_gpus=1,
              runtime_env={"worker_process_setup_hook": pretend_cuda} if pretend else None)
    try:
        submit(parse_spec(raw), log=lambda *a: print(*a, flush=True))
    except Exception as exc:  # a sweep whose every run failed says so, with the first error
        print("SUBMIT FAILED:", exc, flush=True)
    ray.shutdown()
""")


def sweep_on_a_logical_gpu(tmp_path, gpu: float, pretend_cuda: bool) -> tuple[list, str, str]:
    """(the trial store's config.json and result.json of each trial, Tune's error texts, what
    the driver printed)."""
    storage = tmp_path / "sweeps"
    raw = tiny_spec(storage, name="placed", trials=1, steps=20, report_every=10,
                    max_failures=0, resources={"cpu": 1, "gpu": gpu})
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",
                                                             "CUDA_VISIBLE_DEVICES")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(raw),
                           "1" if pretend_cuda else "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    trials = []
    for entry in sorted((storage / "placed" / "trials").iterdir()):
        trials.append({name: json.loads((entry / f"{name}.json").read_text())
                       for name in ("config", "result") if (entry / f"{name}.json").exists()})
    errors = "\n".join(p.read_text() for p in (storage / "placed" / "tune").rglob("error.txt"))
    return trials, errors, proc.stdout


@pytest.mark.slow
@no_cuda
def test_a_trial_that_asked_for_no_gpu_trains_on_the_cpu_of_a_gpu_node(tmp_path):
    trials, errors, said = sweep_on_a_logical_gpu(tmp_path, gpu=0, pretend_cuda=True)
    assert errors == "" and "SUBMIT FAILED" not in said, said
    assert len(trials) == 1, trials
    config, result = trials[0]["config"], trials[0]["result"]
    assert config["device"] == "cpu" and config["gpu_ids"] == []
    assert result["stop_reason"] == "completed" and result["stop_step"] == 20


@pytest.mark.slow
@no_cuda
def test_a_trial_given_a_gpu_without_usable_cuda_fails_at_once(tmp_path):
    trials, errors, said = sweep_on_a_logical_gpu(tmp_path, gpu=1, pretend_cuda=False)
    assert "CudaUnusable: resources.gpu: this trial was given GPU 0" in errors, errors[-3000:]
    if "SUBMIT FAILED" in said:  # the driver names the cause too, where it reports failures
        assert "resources.gpu: this trial was given GPU 0" in said, said
    assert len(trials) == 1, trials
    assert trials[0]["result"]["stop_reason"] == "failed"
    assert trials[0]["result"]["stop_step"] == 0  # nothing trained on the CPU in the GPU's place
    assert "device" not in trials[0]["config"]  # recorded by the driver, not by a trainer
