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


# The files that take longest in `make test` (their tests' times summed, mean of four idle
# runs with --junitxml, 2026-12-06), longest first. The Makefile hands whole files to the two
# workers in collection order (--dist loadfile --no-loadscope-reorder), so these go first and
# the small files fill the end. In xdist's default order (most tests first) a long file could
# start last and run alone: replaying xdist's handout on those four runs, this order ended
# 1-36 s sooner; one pair of real runs an hour apart took 1096 s this way, 1160 s the other.
HEAVIEST_FIRST = (
    "test_faults.py", "test_seeds_and_budget.py", "test_tracking.py", "test_byo.py",
    "test_storage.py", "test_cluster.py", "test_gpu_check.py", "test_docs.py",
    "test_driver_lock.py", "test_quality_benchmark.py", "test_sweep.py", "test_bad_inputs.py",
    "test_budget_benchmark.py", "test_family.py", "test_early_stop.py", "test_inception.py",
    "test_readers.py", "test_placement.py", "test_report.py", "test_conv_trainers.py",
    "test_secrets.py", "test_pareto.py", "test_report_browser.py", "test_namespace.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


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

    from gansweep.jobs.submit import local_ray

    local_ray(num_cpus=2)
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
