"""Compute saved by stopping collapsed runs early, at an unchanged best result.

One process, one local Ray (2 CPUs), the same seeded `ring8` sweep of the plain MLP GAN run
twice through `jobs.submit.submit`: once with stopping off (`early_stop: {collapse: false}`,
FIFO: every configuration trains all its steps) and once with collapse stopping on. The space
deliberately includes regions that collapse: no minibatch discrimination, discriminator
learning rates up to 5e-2, generator learning rates up to 2e-2, codes of 2 to 64 dimensions
(wide codes with a fast discriminator collapse onto one mode), either GAN loss.

The same configurations in both arms: Optuna's TPE sampler draws its first
`n_startup_trials` (10) configurations at random from its seed, independently of any result,
so a sweep of at most 10 trials proposes exactly the same configurations with stopping on and
off (a later TPE suggestion would depend on the results, which stopping changes). The script
checks this (same configuration keys in both arms) and records it. Training is deterministic
on CPU (one torch thread per trial), so a configuration that is not stopped trains identically
in both arms.

Measured: total training steps (sum over configurations of the step each stopped at), wall
time of each arm, the best configuration of each arm (most modes captured, then highest
hq_fraction, read from each configuration's final report) and `steps_saved_fraction`.
Target: >= 0.5 of the steps saved, the best trial's modes_captured unchanged and its
hq_fraction within 0.02.

    .venv/bin/python benchmarks/early_stop.py --replicates 3 4
        ->  benchmarks/results/early_stop.json (seed 0; seeds 3 and 4 as held-out repeats)

The collapse settings were chosen before this sweep ran, on the same space with sampler seeds
1 and 2 (DEV_SEEDS, 20 configurations trained to the end, the detector replayed on their
reports): the lowest threshold (patience >= 2) that kept each development sweep's best
configuration and saved at least 60% of its steps on both. Mode counts at a report are noisy
for runs with a high discriminator learning rate, so some stopped runs would have recovered;
the result lists, for every stopped configuration, what it reached with stopping off.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIALS, STEPS, REPORT_EVERY, SEED, DEV_SEEDS = 10, 2000, 100, 0, (1, 2)
SPACE = {"lr_d": {"low": 1e-3, "high": 5e-2, "log": True},
         "lr_g": {"low": 1e-4, "high": 2e-2, "log": True},
         "code_length": {"low": 2, "high": 64, "log": True},
         "loss": {"choices": ["minimax", "nonsaturating"]}}
FIXED = {"minibatch_disc": False, "batch_size": 64, "beta1": 0.5, "width": 128}
# mode_diversity = modes_captured / 8 on ring8: below 0.75 is fewer than 6 of the 8 modes, at
# two consecutive reports from step 200 on (so a run is stopped at step 300 at the earliest).
COLLAPSE = {"threshold": 0.75, "patience": 2, "grace_steps": 200}


def spec_for(name: str, storage: str, early_stop: dict, trials: int, steps: int,
             report_every: int, seed: int, space: dict = SPACE, fixed: dict = FIXED) -> dict:
    return {"name": name, "trainer": "gan", "dataset": "ring8", "trials": trials,
            "steps": steps, "report_every": report_every, "metric": "modes_captured",
            "seed": seed, "space": space, "fixed": fixed, "early_stop": early_stop,
            "max_concurrent": 2, "resources": {"cpu": 1, "gpu": 0}, "storage": storage}


def arm_results(root: Path) -> dict:
    """Per configuration: its config, how and when it stopped, its final scores."""
    from jobs import sweep_dir as sd
    from jobs.status import collect
    from trainers.store import TrialStore

    status = collect(root)
    store = TrialStore(str(root / sd.TRIALS))
    trials = {}
    for row in status["trials"]:
        result = store.read_json(row["key"], "result.json") or {}
        final = result.get("final", {})
        trials[row["key"]] = {
            "config": row["config"], "stop_reason": row["state"], "stop_step": row["step"],
            "modes_captured": _num(final.get("modes_captured")),
            "hq_fraction": _num(final.get("hq_fraction"))}
    return {"counts": {k: v for k, v in status["counts"].items() if v}, "trials": trials}


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def best_of(trials: dict) -> dict:
    """Most modes captured, then the highest hq_fraction (the benchmark's ranking)."""
    scored = [(k, t) for k, t in trials.items() if t["modes_captured"] is not None]
    key, t = max(scored, key=lambda kt: (kt[1]["modes_captured"], kt[1]["hq_fraction"] or 0.0))
    return {"key": key, **t}


def compare(storage: str | Path, trials: int = TRIALS, steps: int = STEPS,
            report_every: int = REPORT_EVERY, seed: int = SEED, collapse: dict = COLLAPSE,
            space: dict = SPACE, fixed: dict = FIXED, log=lambda *_: None) -> dict:
    """Run the sweep with stopping off, then on; return the comparison. Ray must be up."""
    from jobs.spec import parse_spec
    from jobs.submit import submit

    if trials > 10:
        raise ValueError("at most 10 trials: beyond TPE's 10 random start-up trials the two "
                         "arms would no longer propose the same configurations")
    arms = {}
    for arm, early_stop in (("off", {"collapse": False}), ("on", {"collapse": collapse})):
        spec = parse_spec(spec_for(f"early-stop-{arm}", str(storage), early_stop, trials,
                                   steps, report_every, seed, space, fixed))
        t0 = time.perf_counter()
        root = submit(spec, log=log)
        wall = time.perf_counter() - t0
        res = arm_results(root)
        res["wall_s"] = round(wall, 2)
        res["total_steps"] = sum(t["stop_step"] for t in res["trials"].values())
        res["best"] = best_of(res["trials"])
        arms[arm] = res
    off, on = arms["off"], arms["on"]
    same_configs = (set(off["trials"]) == set(on["trials"])
                    and all(off["trials"][k]["config"] == on["trials"][k]["config"]
                            for k in off["trials"]))
    saved = 1.0 - on["total_steps"] / off["total_steps"]
    b_off, b_on = off["best"], on["best"]
    hq_diff = abs((b_on["hq_fraction"] or 0.0) - (b_off["hq_fraction"] or 0.0))
    return {
        "settings": {"trainer": "gan", "dataset": "ring8", "trials": trials, "steps": steps,
                     "report_every": report_every, "seed": seed, "space": space,
                     "fixed": fixed, "collapse_on": collapse, "max_concurrent": 2},
        "same_configurations_in_both_arms": same_configs,
        "total_steps": {"off": off["total_steps"], "on": on["total_steps"]},
        "wall_s": {"off": off["wall_s"], "on": on["wall_s"]},
        "steps_saved_fraction": round(saved, 4),
        "wall_saved_fraction": round(1.0 - on["wall_s"] / off["wall_s"], 4),
        "best": {"off": b_off, "on": b_on},
        "best_same_configuration": b_off["key"] == b_on["key"],
        "best_modes_captured_unchanged": b_on["modes_captured"] == b_off["modes_captured"],
        "best_hq_fraction_diff": round(hq_diff, 4),
        "counts": {"off": off["counts"], "on": on["counts"]},
        # what stopping cost: each stopped configuration, and where it ended with stopping off
        "stopped": {k: {"stop_reason": t["stop_reason"], "stop_step": t["stop_step"],
                        "at_stop": [t["modes_captured"], t["hq_fraction"]],
                        "with_stopping_off": [off["trials"][k]["modes_captured"],
                                              off["trials"][k]["hq_fraction"]]}
                    for k, t in on["trials"].items()
                    if t["stop_reason"] != "completed" and k in off["trials"]},
        "trials": {"off": off["trials"], "on": on["trials"]},
    }


def target_met(result: dict) -> bool:
    return (result["steps_saved_fraction"] >= 0.5 and result["best_modes_captured_unchanged"]
            and result["best_hq_fraction_diff"] <= 0.02)


def summary(result: dict) -> dict:
    """The figures that matter, for the replicate seeds."""
    return {"seed": result["settings"]["seed"],
            "same_configurations_in_both_arms": result["same_configurations_in_both_arms"],
            "total_steps": result["total_steps"], "wall_s": result["wall_s"],
            "steps_saved_fraction": result["steps_saved_fraction"],
            "best": {arm: [b["modes_captured"], b["hq_fraction"], b["stop_reason"]]
                     for arm, b in result["best"].items()},
            "best_same_configuration": result["best_same_configuration"],
            "counts_on": result["counts"]["on"],
            "stopped_runs_with_stopping_off": sorted(
                v["with_stopping_off"] for v in result["stopped"].values()),
            "target_met": target_met(result)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=TRIALS)
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--report-every", type=int, default=REPORT_EVERY)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--replicates", type=int, nargs="*", default=[],
                   help="further sampler seeds to repeat the comparison with (reported apart)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "early_stop.json"))
    p.add_argument("--keep", help="keep the sweep directories here (default: temporary)")
    args = p.parse_args(argv)

    import ray
    import torch

    load_before = os.getloadavg()
    log = functools.partial(print, flush=True)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            storage = Path(args.keep or tmp)
            t0 = time.perf_counter()
            result = compare(storage / f"seed{args.seed}", args.trials, args.steps,
                             args.report_every, args.seed, log=log)
            total = time.perf_counter() - t0
            replicates = [summary(compare(storage / f"seed{seed}", args.trials, args.steps,
                                          args.report_every, seed, log=log))
                          for seed in args.replicates]
    finally:
        ray.shutdown()
    target = {"steps_saved_fraction": ">= 0.5", "best_modes_captured": "unchanged",
              "best_hq_fraction": "within 0.02"}
    out = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/early_stop.py"
                      + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
           "target": target, "target_met": target_met(result),
           "sampler": "Optuna TPESampler(seed) as gansweep uses it; all trials are within "
                      "its 10 random start-up trials, so both arms get the same "
                      "configurations (checked: same_configurations_in_both_arms)",
           "collapse_settings_chosen_on": f"development sweeps with sampler seeds {DEV_SEEDS} "
                                          "(lowest threshold, patience >= 2, that kept each "
                                          "one's best and saved >= 60% on both)",
           **result, "benchmark_wall_s": round(total, 1),
           "replicates": replicates,
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "loadavg_before": [round(x, 2) for x in load_before],
                       "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                       "python": platform.python_version(), "torch": torch.__version__,
                       "ray": ray.__version__}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(json.dumps({**summary(result), "replicates": replicates}, indent=1))
    return out


if __name__ == "__main__":
    main()
