"""Shared fixtures. Tests run on 2 cores: keep torch to one thread per process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.servers import postgres, s3  # noqa: F401 - session fixtures: one server each

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session gets its own download/evaluator cache, never the user's."""
    monkeypatch.setenv("GANSWEEP_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def run_cli(*args: str, check: bool = True, env: dict | None = None, timeout: float = 300):
    """Run the real `gansweep` command line in a fresh process."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "gansweep", *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"gansweep {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def ray_local():
    """One real local Ray for the whole session (starting one costs seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def tiny_spec(storage, **changes) -> dict:
    """A sweep small enough for CI: the MLP GAN on ring8, a few reports per trial, one seed
    per configuration (tests of seed racing say `seeds` themselves)."""
    raw = {"name": "tiny", "trainer": "gan", "dataset": "ring8", "trials": 3, "steps": 40,
           "report_every": 20, "metric": "modes_captured", "seed": 0,
           "fixed": {"width": 16, "batch_size": 64}, "max_concurrent": 2, "seeds": 1,
           "storage": str(storage)}
    raw.update(changes)
    return raw
