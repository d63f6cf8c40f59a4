"""The sweep phase of benchmarks/gpu_check.py: real sweeps through `jobs.submit.submit` on
this machine's local Ray, four trials per GPU (`gpu: 0.25`) and one (`gpu: 1`), with the
GPUs Ray assigned each trial (its config.json in the trial store) and nvidia-smi sampled
while each runs. The only phase that needs Ray, Optuna and the rest of gansweep's
dependencies installed; gpu_check.py skips it, saying so, where they are not.

Both arms get the same spec but for `resources`, and the same sampler seed, so Optuna's
random start-up proposes the same configurations to both (checked: `same_configurations`).
Collapse stopping is off so every trial trains the same number of steps. An arm that reaches
its time cap is stopped the way Ctrl-C stops a sweep (SIGINT: trials checkpoint, the driver
returns) and its rate counts the configurations that finished.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.gpu_check import use_checkout

use_checkout()

from gansweep.analysis import layout
from gansweep.analysis.records import RunRecord
from gansweep.jobs.resources import REHEARSAL_ENV
from gansweep.trainers.errors import Interrupted

ARMS = (("quarter", 0.25), ("whole", 1.0))
MAX_CONCURRENT = 4


class GpuSampler:
    """nvidia-smi every `every` seconds in a thread: utilisation and memory of GPU 0, and how
    many processes other than this driver hold a context on it (the trials)."""

    def __init__(self, every: float = 0.5):
        self.every, self.samples = every, []
        self.available = shutil.which("nvidia-smi") is not None
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _query(self, *args: str) -> list[str]:
        try:
            out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True,
                                 timeout=5).stdout
        except (OSError, subprocess.SubprocessError):
            return []
        return [line.strip() for line in out.splitlines() if line.strip()]

    def _run(self) -> None:
        while not self.stop_event.wait(self.every):
            gpus = self._query("--query-gpu=utilization.gpu,memory.used",
                               "--format=csv,noheader,nounits")
            apps = [p for p in self._query("--query-compute-apps=pid", "--format=csv,noheader")
                    if p != str(os.getpid())]
            if gpus:
                util, mem = (float(v) for v in gpus[0].split(","))
                self.samples.append((round(time.time(), 2), util, mem, len(apps)))

    def __enter__(self) -> GpuSampler:
        if self.available:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join(timeout=10)

    def summary(self, start: float | None, end: float | None) -> dict:
        """Over the whole arm, and `while_training`: from the first trial's start to the last
        one's end (the arm also spans the driver's set-up: data check, evaluator)."""
        if not self.available:
            return {"skipped": "no nvidia-smi"}
        util = [s[1] for s in self.samples]
        during = [s[1] for s in self.samples if start and end and start <= s[0] <= end]
        return {"gpu": 0, "every_s": self.every, "n": len(util), "mean": _mean(util),
                "mean_while_training": _mean(during), "n_while_training": len(during),
                "min": min(util, default=None), "max": max(util, default=None),
                "max_trial_processes_on_gpu": max((s[3] for s in self.samples), default=None),
                "samples_t_util_mem_mib_procs": self.samples}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def trials_of(root: Path, wall_end: float) -> dict:
    """What the trial store says: when each configuration started and ended, the device
    it chose and the GPUs Ray gave it; the most that were training at once."""
    store = layout.TrialStore.of(root)
    rows = []
    for key in store.keys():
        config = store.record(key) or RunRecord()
        result = store.result(key)
        rows.append({"key": key, "created": config.created,
                     "finished": result and result.finished,
                     "stop_reason": result and result.stop_reason,
                     "device": config.device, "gpu_ids": config.gpu_ids,
                     "train_s": result and result.time_s})
    events = sorted([(r["created"], 1) for r in rows if r["created"]]
                    + [(r["finished"] or wall_end, -1) for r in rows if r["created"]])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    started = [r["created"] for r in rows if r["created"]]
    ended = [r["finished"] for r in rows if r["finished"]]
    return {"trials": rows, "max_training_at_once": most,
            "devices": sorted({str(r["device"]) for r in rows}),
            "gpu_ids": sorted({",".join(r["gpu_ids"] or []) for r in rows}),
            "finished": sum(r["finished"] is not None for r in rows),
            "training_span": [min(started, default=None), max(ended, default=None)]}


def run_arm(label: str, gpu: float, sizes, storage: Path, cap_s: float) -> dict:
    from gansweep.jobs.spec import parse_spec
    from gansweep.jobs.submit import submit

    spec = parse_spec({
        "name": f"gpu-check-{label}", "trainer": sizes.sweep_trainer,
        "dataset": sizes.sweep_dataset, "trials": sizes.sweep_trials,
        "steps": sizes.sweep_steps, "report_every": max(1, sizes.sweep_steps // 2),
        "metric": "mode_diversity", "seed": 0, "fixed": dict(sizes.sweep_fixed),
        "early_stop": {"collapse": False}, "seeds": 1,  # configurations per minute: one run each
        "resources": {"cpu": sizes.sweep_cpu, "gpu": gpu},
        "max_concurrent": MAX_CONCURRENT, "max_failures": 0, "storage": str(storage)})
    # The cap arrives as Ctrl-C would: the sweep stops cleanly and says so.
    timer = threading.Timer(cap_s, os.kill, (os.getpid(), signal.SIGINT))
    stopped = None
    t0 = time.time()
    with GpuSampler() as sampler:
        timer.start()
        try:
            submit(spec, log=lambda *a: print(f"[gpu_check] {label}:", *a, flush=True))
        except (Interrupted, KeyboardInterrupt):
            stopped = "arm time cap reached"
        finally:
            timer.cancel()
    wall = time.time() - t0
    found = trials_of(Path(spec.sweep_dir), t0 + wall)
    return {"resources": dict(spec.resources), "trials_asked": spec.trials, "stopped": stopped,
            "wall_s": round(wall, 2),
            "configs_per_min": round(found["finished"] / (wall / 60), 2),
            "utilisation": sampler.summary(*found["training_span"]), **found}


def sweep_phase(sizes, device: str, deadline: float, note) -> dict:
    import ray

    cuda = device.startswith("cuda")
    # On a machine without CUDA, one logical GPU: Ray assigns it as it would a real one
    # (CUDA_VISIBLE_DEVICES, ray.get_gpu_ids()), and the rehearsal switch lets the trials
    # handed it train on the CPU where a real sweep's would fail for want of CUDA.
    extra = {} if cuda else {"num_cpus": 2, "num_gpus": 1,
                             "runtime_env": {"env_vars": {REHEARSAL_ENV: "1"}}}
    # "local": a Ray of its own even where RAY_ADDRESS or a stale ray_current_cluster points
    # elsewhere; one try on a borrowed machine should not depend on what ran there before
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **extra)
    storage = Path(tempfile.mkdtemp(prefix="gansweep-gpu-check-"))
    arms = {}
    try:
        cluster = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
        for i, (label, gpu) in enumerate(ARMS):
            left = deadline - time.time()
            if left < 5:
                arms[label] = {"skipped": "phase time cap reached"}
                continue
            arms[label] = run_arm(label, gpu, sizes, storage, left / (len(ARMS) - i))
            note("arms", arms)
    finally:
        ray.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    keys = [sorted(r["key"] for r in a.get("trials", [])) for a in arms.values()]
    return {"ray_cluster": cluster, "logical_gpu": not cuda, "order": [a for a, _ in ARMS],
            "trainer": sizes.sweep_trainer, "dataset": sizes.sweep_dataset,
            "fixed": dict(sizes.sweep_fixed), "steps": sizes.sweep_steps,
            "arms": arms, "same_configurations": len(keys) == 2 and keys[0] == keys[1]}
