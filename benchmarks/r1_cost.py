"""What DCGAN's R1 penalty (`r1_gamma`) costs per training step, every step and lazily
(`r1_every`), side by side with it off.

The configuration digits DCGAN's search returned (`quality.json`, entry `digits-dcgan`) on
digits at 16x16, one thread, as a trial has on 2 cores with two in flight. The penalty needs D's
gradient at the real images and its derivative, so D's step does a double backward; lazily,
only every `--every`-th step does (one arm per interval). The arms are interleaved over
rounds against drift of the machine's load, and the median is kept, on both clocks: process
CPU time (what the step costs) and wall time. The coverage the penalty buys is measured in
docs/benchmarks/quality.md, not here.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/r1_cost.py  -> results/r1_cost.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.quality import returned_by  # noqa: E402
from gansweep.trainers.hparams import parse_sets  # noqa: E402
from gansweep.trainers.registry import build, get_trainer  # noqa: E402


def returned_config() -> dict:
    """The digits DCGAN search's answer, typed as the trainer takes it."""
    _, sets = returned_by("digits-dcgan", ROOT / "benchmarks/results/quality.json")
    return parse_sets(get_trainer("dcgan").HPARAMS, sets, "dcgan")


def per_step(trainer, steps: int) -> tuple[float, float]:
    """Milliseconds per step: process CPU time, wall time."""
    c, w = time.process_time(), time.perf_counter()
    trainer.train(steps)
    return ((time.process_time() - c) / steps * 1000, (time.perf_counter() - w) / steps * 1000)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gamma", type=float, default=1.0)
    p.add_argument("--every", type=int, nargs="+", default=[4, 16],
                   help="r1_every of each lazy arm")
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/r1_cost.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    config = returned_config()
    if args.gamma <= 0:
        p.error("--gamma: give the penalty weight to compare with none, a number > 0")
    if min(args.every) < 2:
        p.error("--every: give each lazy arm's interval, an integer >= 2 (1 is the full arm)")
    settings = {"off": {}, "every step": {"r1_gamma": args.gamma},
                **{f"every {k}": {"r1_gamma": args.gamma, "r1_every": k} for k in args.every}}
    arms = {name: build("dcgan", {"name": "digits", "image_size": config["image_size"]},
                        {**config, **extra}, seed=0, device="cpu")
            for name, extra in settings.items()}
    for trainer in arms.values():
        trainer.train(5)  # warm-up: allocator, first-call paths
    times: dict = {g: [] for g in arms}
    order = list(arms)
    for r in range(args.rounds):
        for g in order if r % 2 == 0 else order[::-1]:
            times[g].append(per_step(arms[g], args.steps))
    rows = {g: {"cpu_ms_per_step": round(statistics.median(t[0] for t in times[g]), 2),
                "wall_ms_per_step": round(statistics.median(t[1] for t in times[g]), 2)}
            for g in arms}

    def ratio(arm: str, clock: str) -> float:
        return round(rows[arm][f"{clock}_ms_per_step"] / rows["off"][f"{clock}_ms_per_step"], 2)

    out = {"trainer": "dcgan", "dataset": "digits", "config": config, "gamma": args.gamma,
           "every": args.every, "steps": args.steps, "rounds": args.rounds, "arms": rows,
           "cpu_ratio": ratio("every step", "cpu"), "wall_ratio": ratio("every step", "wall"),
           "lazy_cpu_ratio": {str(k): ratio(f"every {k}", "cpu") for k in args.every},
           "load_average": os.getloadavg(), "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"| R1 penalty (r1_gamma {args.gamma:g}) | CPU ms/step | wall ms/step | CPU ratio |")
    print("|---|---|---|---|")
    for g, r in rows.items():
        print(f"| {g} | {r['cpu_ms_per_step']:.2f} | {r['wall_ms_per_step']:.2f} | "
              f"{ratio(g, 'cpu'):.2f} |")


if __name__ == "__main__":
    main()
