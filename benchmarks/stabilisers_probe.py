"""Which stabilisers and settings make the MLP GAN good on every seed on ring8 and grid25.

Each run builds `trainers.registry.build("gan", DATASET, config, seed)`, trains `--steps` steps
in chunks of `--report-every` and scores the fixed latent batch of 2500 samples with
`analysis.metrics.score` (the PacGAN/VEEGAN rules: modes_captured, hq_fraction) at every
chunk. Per run it records every report, the final scores, the jitter (max - min of
hq_fraction over the last 5 reports: how far the model still swings at the end) and the
process CPU and wall seconds.

The targets (mean over 5 fresh seeds): ring8 >= 7.9 modes and >= 0.96 hq; grid25 >= 24.8
modes and >= 0.94 hq. Settings are named in SETTINGS (changes to the trainer's defaults);
runs accumulate in one JSON, keyed by (dataset, setting, seed, steps), so stages add to it
and a rerun skips what is there (`--force` trains again).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/stabilisers_probe.py \\
        --dataset ring8 --seeds 0 1 2 --settings default ema pac2
    .venv/bin/python benchmarks/stabilisers_probe.py --table     # the README's table

What produced benchmarks/results/stabilisers_probe.json, in this order (development seeds
0-2 choose; seeds 10-14, run only after the choice, confirm):

    P=".venv/bin/python benchmarks/stabilisers_probe.py"; export OMP_NUM_THREADS=1
    $P --dataset ring8 --settings default ema halflife pac2 pac4 depth3 depth4 width256 \
       batch256 ttur beta1_0 minimax
    $P --dataset grid25 --settings default ema halflife pac2 depth3 width256 batch256
    $P --dataset ring8 --settings ema+depth3 ema+width256
    $P --dataset grid25 --steps 30000 --settings ema+batch256 ema
    $P --dataset ring8 --seeds 10 11 12 13 14 --settings ema+depth3
    $P --dataset grid25 --seeds 10 11 12 13 14 --steps 30000 --settings ema+batch256
    # issue 31, sharper output for ring8's HQ ceiling (docs/benchmarks/quality.md)
    $P --dataset ring8 --settings r8 r8+halflife5k r8+halflife2500 r8+ema0.9999
    # issue 31, grid25's long row: two probes at once, one per core (g25+ema0.9999 ran on
    # seed 0 only: 0.888 at 60000 steps, far below, so seed 1 was stopped), then the table
    $P --dataset grid25 --seeds 0 1 --steps 90000 --report-every 5000 --settings g25 &
    $P --dataset grid25 --seeds 0 1 --steps 60000 --report-every 5000 \
       --settings g25+halflife30k g25+ema0.9999
    $P --table --at 60000
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

import torch

from gansweep.analysis.metrics import score
from gansweep.trainers.registry import build

OUT = ROOT / "benchmarks" / "results" / "stabilisers_probe.json"
N = 2500  # the published tables' sample count
JITTER_REPORTS = 5
TARGETS = {"ring8": (7.9, 0.96), "grid25": (24.8, 0.94)}

# Copies of quality.json's ring8 and grid25 answers, pinned: runs merge by setting name, so a
# new search recorded there must not change what an existing name trained.
RING8_RETURNED = {"batch_size": 128, "beta1": 0.0, "depth": 3, "ema": 0.999,
                  "lr_d": 0.0007773797423269309, "lr_g": 0.0014255918857178935, "width": 128}
GRID25_RETURNED = {"batch_size": 256, "beta1": 0.0, "depth": 2, "ema": 0.999,
                   "lr_d": 0.0005594551101635207, "lr_g": 0.0009291870124937284, "width": 256}

# Changes to the MLP GAN's defaults (width 128, depth 2, batch 64, code 2, Adam 1e-3 / 1e-3,
# betas (0.5, 0.999), nonsaturating loss, no stabiliser).
SETTINGS: dict[str, dict] = {
    "default": {},
    "ema": {"ema": 0.999},
    "pac2": {"pac": 2},
    "pac4": {"pac": 4},
    "halflife": {"lr_half_life": 5000.0},
    "depth3": {"depth": 3},
    "depth4": {"depth": 4},
    "width256": {"width": 256},
    "width512": {"width": 512},
    "batch256": {"batch_size": 256},
    "batch512": {"batch_size": 512},
    "ttur": {"lr_g": 5e-4, "lr_d": 2e-3},
    "beta1_0": {"beta1": 0.0},
    "minimax": {"loss": "minimax"},
    # Combinations, after the one-change-at-a-time stage on seeds 0-2.
    "ema+depth3": {"ema": 0.999, "depth": 3},
    "ema+width256": {"ema": 0.999, "width": 256},
    "ema+batch256": {"ema": 0.999, "batch_size": 256},
    # Issue 31's HQ ceiling: what the 30-minute ring8 search returned (quality.json), then
    # one change meant to sharpen its output late in the run.
    "r8": RING8_RETURNED,
    "r8+halflife5k": {**RING8_RETURNED, "lr_half_life": 5000.0},
    "r8+halflife2500": {**RING8_RETURNED, "lr_half_life": 2500.0},
    "r8+ema0.9999": {**RING8_RETURNED, "ema": 0.9999},
    # Issue 31's grid25 long row: what the 45-minute search returned (quality.json), trained
    # longer, with a decaying learning rate, or with a longer average.
    "g25": GRID25_RETURNED,
    "g25+halflife30k": {**GRID25_RETURNED, "lr_half_life": 30000.0},
    "g25+ema0.9999": {**GRID25_RETURNED, "ema": 0.9999},
}


def run_one(dataset: str, config: dict, seed: int, steps: int, every: int) -> dict:
    trainer = build("gan", dataset, config, seed, device="cpu")
    reports = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while trainer.step < steps:
        trainer.train(min(every, steps - trainer.step))
        s = score(trainer.output(N), trainer.data)
        reports.append({"step": trainer.step, "modes": s["modes_captured"],
                        "hq": round(s["hq_fraction"], 4), "rkl": round(s["reverse_kl"], 4)})
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tail = [r["hq"] for r in reports[-JITTER_REPORTS:]]
    return {"config": trainer.config, "final": reports[-1],
            "jitter": round(max(tail) - min(tail), 4), "best_hq": max(r["hq"] for r in reports),
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "reports": reports}


def key(dataset: str, setting: str, seed: int, steps: int) -> str:
    return f"{dataset}/{setting}/seed{seed}/steps{steps}"


def at_step(run: dict, step: int) -> dict:
    """A run as it stood at an earlier report: a 30000-step run also says what 15000 steps
    give (training does not depend on the run's length or on scoring). Its CPU time is
    prorated."""
    reports = [r for r in run["reports"] if r["step"] <= step]
    if reports[-1]["step"] != step:
        raise ValueError(f"no report at step {step}")
    tail = [r["hq"] for r in reports[-JITTER_REPORTS:]]
    return {**run, "steps": step, "final": reports[-1], "reports": reports,
            "jitter": round(max(tail) - min(tail), 4),
            "cpu_s": round(run["cpu_s"] * step / run["steps"], 1), "of_steps": run["steps"]}


def summarise(rows: list[dict]) -> dict:
    def ms(xs):
        return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

    modes, hq = [r["final"]["modes"] for r in rows], [r["final"]["hq"] for r in rows]
    return {"seeds": sorted(r["seed"] for r in rows), "modes": ms(modes), "hq": ms(hq),
            "jitter": statistics.mean(r["jitter"] for r in rows), "min_modes": min(modes),
            "min_hq": min(hq), "cpu_s": statistics.mean(r["cpu_s"] for r in rows)}


def table(runs: dict, at: tuple[int, ...] = (15000,)) -> str:
    """One row per dataset, setting, length and seed block (development seeds < 10,
    confirmation seeds >= 10); longer runs are also shown at each step of `at`."""
    views = list(runs.values())
    for r in runs.values():
        for a in (a for a in at if a < r["steps"]):
            view = at_step(r, a)
            same = runs.get(key(r["dataset"], r["setting"], r["seed"], a))
            if same is None:
                views.append(view)
            elif same["reports"] != view["reports"]:  # training must not depend on the length
                raise AssertionError(f"{key(r['dataset'], r['setting'], r['seed'], a)} differs "
                                     f"from the first {a} steps of the {r['steps']}-step run")
    groups: dict[tuple, list[dict]] = {}
    for r in views:
        label = f"{r['steps']} (of {r['of_steps']})" if "of_steps" in r else str(r["steps"])
        order = (list(TARGETS).index(r["dataset"]), r["seed"] >= 10, r["steps"],
                 list(SETTINGS).index(r["setting"]))
        groups.setdefault((order, r["dataset"], r["setting"], label), []).append(r)
    lines = ["| dataset | setting | seeds | steps | modes mean ± sd (min) | hq mean ± sd (min) | "
             "jitter | CPU s per run |", "|---|---|---|---|---|---|---|---|"]
    for (_, dataset, setting, label), rows in sorted(groups.items()):
        s = summarise(rows)
        lines.append(
            f"| {dataset} | {setting} | {_span(s['seeds'])} | {label} | "
            f"{s['modes'][0]:.1f} ± {s['modes'][1]:.1f} ({s['min_modes']:.0f}) | "
            f"{s['hq'][0]:.3f} ± {s['hq'][1]:.3f} ({s['min_hq']:.3f}) | "
            f"{s['jitter']:.3f} | {s['cpu_s']:.0f} |")
    return "\n".join(lines)


def _span(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(TARGETS))
    ap.add_argument("--settings", nargs="+", default=[])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=15000)
    ap.add_argument("--report-every", type=int, default=500)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--table", action="store_true", help="print the summary table and exit")
    ap.add_argument("--at", nargs="+", type=int, default=[15000],
                    help="with --table: also show longer runs as they stood at these steps")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"runs": {}, "sessions": []}
    if args.table:
        print(table(record["runs"], tuple(args.at)))
        return
    unknown = [s for s in args.settings if s not in SETTINGS]
    if unknown or not args.dataset:
        ap.error(f"give --dataset and settings from {', '.join(SETTINGS)} (unknown: {unknown})")
    session = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv[1:],
               "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    for setting in args.settings:
        for seed in args.seeds:
            k = key(args.dataset, setting, seed, args.steps)
            if k in record["runs"] and not args.force:
                continue
            r = run_one(args.dataset, SETTINGS[setting], seed, args.steps, args.report_every)
            run = {"dataset": args.dataset, "setting": setting, "seed": seed,
                   "steps": args.steps, **r}
            record = merged(out, runs={k: run})
            f = r["final"]
            print(f"{k}: modes {f['modes']:.0f} hq {f['hq']:.3f} jitter {r['jitter']:.3f} "
                  f"best hq {r['best_hq']:.3f} ({r['wall_s']:.0f} s)", flush=True)
        s = summarise([record["runs"][key(args.dataset, setting, seed, args.steps)]
                       for seed in args.seeds])
        print(f"== {args.dataset} {setting}: modes {s['modes'][0]:.2f} ± {s['modes'][1]:.2f}, "
              f"hq {s['hq'][0]:.3f} ± {s['hq'][1]:.3f}, jitter {s['jitter']:.3f}", flush=True)
    session.update(loadavg_after=[round(x, 2) for x in os.getloadavg()],
                   machine={"platform": platform.platform(), "cpu_count": os.cpu_count(),
                            "python": platform.python_version(), "torch": torch.__version__})
    merged(out, session=session)


def merged(out: Path, runs: dict | None = None, session: dict | None = None) -> dict:
    """Add `runs` (and a finished `session`) to the record as it is on disk now, under a lock:
    two probes may run at once (one per core), each writing after every run (resumable)."""
    import fcntl

    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = json.loads(out.read_text()) if out.is_file() else {"runs": {}, "sessions": []}
        record["runs"].update(runs or {})
        if session is not None:
            record["sessions"].append(session)
        out.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
