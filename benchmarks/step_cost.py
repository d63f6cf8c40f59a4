"""What one training step costs, by batch size and minibatch discrimination: why a step budget
does not spend equal compute on every configuration.

The MLP GAN on grid25 with budget.py's fixed settings (width 128, depth 2, ema 0.999), the
minibatch-discrimination layer at the middle of the default space (9 kernels of dimension 7)
or off, at each batch size the default space offers. One thread, as a trial has on 2 cores
with two in flight; the configurations are interleaved over rounds against drift of the
machine's load, and the median of the rounds is kept. Scoring at reports is not included:
it costs every configuration the same.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/step_cost.py  -> results/step_cost.json
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

from gansweep.trainers.registry import build  # noqa: E402

BATCHES = (32, 64, 128, 256)
MBD = {"minibatch_disc": True, "kernels": 9, "kernel_dim": 7}


def settings(batch: int, mbd: bool) -> dict:
    base = {"width": 128, "depth": 2, "ema": 0.999, "batch_size": batch,
            "lr_g": 1e-3, "lr_d": 1e-3}
    return {**base, **MBD} if mbd else {**base, "minibatch_disc": False}


def ms_per_step(trainer, steps: int) -> float:
    t = time.perf_counter()
    trainer.train(steps)
    return (time.perf_counter() - t) / steps * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/step_cost.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    cases = [(b, m) for b in BATCHES for m in (False, True)]
    trainers = {c: build("gan", "grid25", settings(*c), seed=0, device="cpu") for c in cases}
    for t in trainers.values():
        t.train(10)  # warm-up: allocator, first-call paths
    times: dict = {c: [] for c in cases}
    for r in range(args.rounds):
        for c in cases[r % len(cases):] + cases[:r % len(cases)]:
            times[c].append(ms_per_step(trainers[c], args.steps))
    rows = []
    for b in BATCHES:
        off, on = (statistics.median(times[(b, m)]) for m in (False, True))
        rows.append({"batch_size": b, "ms_per_step": round(off, 3),
                     "ms_per_step_mbd": round(on, 3), "mbd_ratio": round(on / off, 2)})
    cheapest = min(r["ms_per_step"] for r in rows)
    for r in rows:
        r["vs_cheapest"] = round(r["ms_per_step"] / cheapest, 2)
        r["vs_cheapest_mbd"] = round(r["ms_per_step_mbd"] / cheapest, 2)
    out = {"dataset": "grid25", "fixed": settings(0, True) | {"batch_size": None},
           "steps": args.steps, "rounds": args.rounds, "rows": rows,
           "load_average": os.getloadavg(), "machine": platform.processor() or platform.machine(),
           "torch": torch.__version__}
    Path(args.out).write_text(json.dumps(out, indent=1))
    print("| batch | ms/step | with minibatch discrimination | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['batch_size']} | {r['ms_per_step']:.2f} | {r['ms_per_step_mbd']:.2f} | "
              f"{r['mbd_ratio']:.1f}x |")


if __name__ == "__main__":
    main()
