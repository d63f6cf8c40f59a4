"""The weight average (`ema`) in short runs: does it steady the scores, and at which decay?

Averaging G's weights changes only what is sampled, never the training trajectory, so one run
shows the live generator and two averages side by side: the trainer runs with `ema` 0.99 and
the script folds the same generator into a second average at 0.999 (`trainers.stabilisers`).
At every report all three are scored on the same fixed latent batch of 2500.

Measured per seed: the final hq_fraction and modes of each, and the report-to-report total
variation of hq_fraction over the second half of the run (sum of |change| between
consecutive reports: a steady climb costs its rise, a swinging score much more). This decides
whether a short test can show the average steadying the scores (tests/test_stabilisers.py)
and which decays a default search space offers for sweeps of a few thousand steps.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stabilisers_short.py
        ->  benchmarks/results/stabilisers_short.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from gansweep.analysis.metrics import score
from gansweep.trainers.registry import build
from gansweep.trainers.stabilisers import average_copy, fold_in

N = 2500


def hq_of(trainer, net) -> dict:
    z = trainer.code(N, torch.Generator().manual_seed(0))  # the fixed batch sample() draws
    with torch.no_grad():
        s = score(net(z).numpy(), trainer.data)
    return {"hq": round(s["hq_fraction"], 4), "modes": s["modes_captured"]}


def total_variation(xs: list[float]) -> float:
    return round(sum(abs(b - a) for a, b in zip(xs, xs[1:])), 4)


def run(dataset: str, seed: int, steps: int, every: int, config: dict) -> dict:
    t = build("gan", dataset, {**config, "ema": 0.99}, seed, device="cpu")
    slow = average_copy(t.G)
    curves = {"live": [], "ema0.99": [], "ema0.999": []}
    while t.step < steps:
        for _ in range(every):  # one step at a time, to fold the second average in too
            t.train(1)
            fold_in(slow, t.G, 0.999, t.step)
        for name, net in (("live", t.G), ("ema0.99", t.G_avg), ("ema0.999", slow)):
            curves[name].append(hq_of(t, net))
    half = len(curves["live"]) // 2
    return {name: {"final": c[-1], "tv_second_half": total_variation([r["hq"] for r in c[half:]]),
                   "hq": [r["hq"] for r in c]} for name, c in curves.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ring8")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--report-every", type=int, default=100)
    ap.add_argument("--config", type=json.loads, default={},
                    help='other hyperparameters as JSON, e.g. \'{"depth": 3}\'')
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "stabilisers_short.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.process_time()
    runs = {}
    for seed in args.seeds:
        runs[seed] = run(args.dataset, seed, args.steps, args.report_every, args.config)
        print(seed, {k: (v["final"], v["tv_second_half"]) for k, v in runs[seed].items()},
              flush=True)
    lower = sum(r["ema0.99"]["tv_second_half"] < r["live"]["tv_second_half"] / 2
                for r in runs.values())
    out = {"dataset": args.dataset, "config": args.config, "steps": args.steps,
           "report_every": args.report_every, "seeds": args.seeds,
           "cpu_s": round(time.process_time() - t0, 1),
           "ema0.99_tv_under_half_of_live": f"{lower} of {len(runs)}",
           "loadavg": [round(x, 2) for x in os.getloadavg()], "torch": torch.__version__,
           "runs": runs}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(out["ema0.99_tv_under_half_of_live"], f"{out['cpu_s']} s CPU")


if __name__ == "__main__":
    main()
