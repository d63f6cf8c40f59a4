"""What DCGAN's R1 penalty (`r1_gamma`) costs per training step, side by side with it off.

The configuration digits DCGAN's search returned (`quality.json`, entry `digits-dcgan`) on
digits at 16x16, one thread, as a trial has on 2 cores with two in flight. The penalty needs D's
gradient at the real images and its derivative, so D's step does a double backward. Both arms
are interleaved over rounds against drift of the machine's load, and the median is kept, on
both clocks: process CPU time (what the step costs) and wall time. The coverage the penalty
buys is measured in docs/benchmarks/quality.md, not here.

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
    p.add_argument("--steps", type=int, default=20, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/r1_cost.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    config = returned_config()
    if args.gamma <= 0:
        p.error("--gamma: give the penalty weight to compare with none, a number > 0")
    arms = {g: build("dcgan", {"name": "digits", "image_size": config["image_size"]},
                     {**config, "r1_gamma": g}, seed=0, device="cpu") for g in (0.0, args.gamma)}
    for trainer in arms.values():
        trainer.train(5)  # warm-up: allocator, first-call paths
    times: dict = {g: [] for g in arms}
    order = list(arms)
    for r in range(args.rounds):
        for g in order if r % 2 == 0 else order[::-1]:
            times[g].append(per_step(arms[g], args.steps))
    rows = {str(g): {"cpu_ms_per_step": round(statistics.median(t[0] for t in times[g]), 2),
                     "wall_ms_per_step": round(statistics.median(t[1] for t in times[g]), 2)}
            for g in arms}
    off, on = rows["0.0"], rows[str(args.gamma)]
    out = {"trainer": "dcgan", "dataset": "digits", "config": config, "gamma": args.gamma,
           "steps": args.steps, "rounds": args.rounds, "arms": rows,
           "cpu_ratio": round(on["cpu_ms_per_step"] / off["cpu_ms_per_step"], 2),
           "wall_ratio": round(on["wall_ms_per_step"] / off["wall_ms_per_step"], 2),
           "load_average": os.getloadavg(), "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| r1_gamma | CPU ms/step | wall ms/step |")
    print("|---|---|---|")
    for g, r in rows.items():
        print(f"| {g} | {r['cpu_ms_per_step']:.2f} | {r['wall_ms_per_step']:.2f} |")
    print(f"ratio with the penalty: {out['cpu_ratio']:.2f} (CPU), {out['wall_ratio']:.2f} (wall)")


if __name__ == "__main__":
    main()
