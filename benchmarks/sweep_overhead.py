"""Per-trial overhead of a gansweep sweep against bare Ray Tune, same trivial trainable.

The trainable is what a user would write by hand for Ray Tune: build the trainer, train a
couple of steps, score, `tune.report`. Bare Tune runs it with OptunaSearch and
reuse_actors=True; gansweep runs the same trainer, space and scoring through `submit` (its
trial store, stoppers, callbacks, frozen spec). Runs alternate, twice each, in one process
on one local Ray, and the per-trial figures are medians.

    .venv/bin/python benchmarks/sweep_overhead.py   ->  benchmarks/results/sweep_overhead.json
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIALS, STEPS, REPS = 40, 2, 3
FIXED = {"width": 8, "batch_size": 32}


def bare_trainable(config: dict) -> None:
    from ray import tune

    from gansweep.jobs.loop import score_model
    from gansweep.trainers.registry import build

    trainer = build("gan", "gauss1d", config, seed=0, steps=STEPS)
    while trainer.step < STEPS:
        row = {"step": trainer.step + 1, **trainer.train(1)}
        row.update(score_model(trainer, True))
        tune.report({**row, "objective": row["fid"]})


def run_bare(storage: str) -> float:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from gansweep.search_spaces import make_space

    search = OptunaSearch(space=make_space("gan", {}, FIXED, STEPS), metric="objective",
                          mode="min", sampler=optuna.samplers.TPESampler(seed=0))
    tuner = tune.Tuner(bare_trainable, tune_config=tune.TuneConfig(
        search_alg=search, num_samples=TRIALS, max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name="bare", verbose=0))
    t0 = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - t0


def run_gansweep(storage: str, name: str) -> float:
    from gansweep.jobs.spec import parse_spec
    from gansweep.jobs.submit import submit

    spec = parse_spec({"name": name, "trainer": "gan", "dataset": "gauss1d", "trials": TRIALS,
                       "steps": STEPS, "report_every": 1, "metric": "fid", "fixed": FIXED,
                       "early_stop": {"collapse": False}, "max_concurrent": 2,
                       "storage": storage})
    t0 = time.perf_counter()
    submit(spec, log=lambda *_: None)
    return time.perf_counter() - t0


def main() -> None:
    import ray
    import torch

    load0 = os.getloadavg()[0]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # First runs pay for worker start-up and first imports on either path.
        run_bare(tmp + "/warm")
        run_gansweep(tmp + "/warm", "warm")
        for rep in range(REPS):
            bare.append(run_bare(f"{tmp}/bare{rep}") / TRIALS)
            ours.append(run_gansweep(f"{tmp}/ours{rep}", f"s{rep}") / TRIALS)
    ray.shutdown()
    b, g = statistics.median(bare), statistics.median(ours)
    result = {
        "command": "python benchmarks/sweep_overhead.py",
        "trials": TRIALS, "steps_per_trial": STEPS, "repetitions": REPS,
        "bare_tune_s_per_trial": round(b, 4), "gansweep_s_per_trial": round(g, 4),
        "ratio": round(g / b, 3), "target": "<= 1.1",
        "bare_runs_s_per_trial": [round(x, 4) for x in bare],
        "gansweep_runs_s_per_trial": [round(x, 4) for x in ours],
        "paired_ratios": [round(o / b, 3) for o, b in zip(ours, bare)],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_1m_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "torch": torch.__version__, "ray": ray.__version__,
    }
    out = ROOT / "benchmarks" / "results" / "sweep_overhead.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
