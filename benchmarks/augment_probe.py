"""Does `augment` (DiffAugment) lift digits DCGAN's coverage? Single runs on development seeds.

Each arm is the configuration the digits DCGAN search returned (benchmarks/results/
quality.json, `digits-dcgan`) with one `augment` policy, trained through `gansweep train`
with the search's report cadence and scored at every report. Runs live in `--runs`: an arm
whose run there already reached `--steps` with the same settings is read, not trained again,
so the arms can be run one per core (or across sessions) and collected by a last call.

    P="OMP_NUM_THREADS=1 .venv/bin/python benchmarks/augment_probe.py --runs /work/probe"
    $P --policies none translation translation,cutout --seeds 0
    .venv/bin/python benchmarks/augment_probe.py --table
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "augment_probe.json"
SOURCE = ROOT / "benchmarks" / "results" / "quality.json"
COLUMNS = ("coverage", "fid", "precision", "density", "loss_d", "loss_g")


def returned() -> list[str]:
    """The DCGAN search's answer as `gansweep train --set`s, without `augment`."""
    sets = json.loads(SOURCE.read_text())["digits-dcgan"]["returned"]["set"]
    return [kv for kv in sets if not kv.startswith("augment=")]


def run_arm(runs: Path, policy: str, seed: int, steps: int) -> dict:
    out = runs / f"{policy}-s{seed}"
    sets = [*returned(), f"augment={policy}"]
    if not _finished(out, steps, sets):  # a shorter run there is continued, not restarted
        kept = (out / "checkpoint" / "state.pt").is_file()
        subprocess.run([sys.executable, "-m", "gansweep", "train", "dcgan", "--dataset", "digits",
                        *(a for kv in sets for a in ("--set", kv)), "--seed", str(seed),
                        "--steps", str(steps), "--report-every", "500", "--score-every", "500",
                        "--out", str(out), *(["--resume"] if kept else [])], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    config = json.loads((out / "config.json").read_text())["config"]
    return {"policy": policy, "seed": seed, "steps": steps, "config": config,
            "reports": [{"step": int(r["step"]), **{k: float(r[k]) for k in COLUMNS}}
                        for r in rows]}


def _finished(out: Path, steps: int, sets: list[str]) -> bool:
    """A run in `out` that reached `steps` with these settings (else it is trained here; a
    run with other settings is refused by `gansweep train` itself)."""
    try:
        config = json.loads((out / "config.json").read_text())["config"]
        last = list(csv.DictReader((out / "metrics.csv").open()))[-1]
    except (OSError, IndexError, KeyError):
        return False
    want = dict(kv.split("=", 1) for kv in sets)
    return int(last["step"]) >= steps and all(str(config[k]) == v for k, v in want.items())


def table(results: dict) -> str:
    lines = ["| augment | seed | coverage at 1000 / 2000 / 3000 / 4000 | fid at 4000 | "
             "precision / density at 4000 | loss_d at 500 → 4000 |", "|---|---|---|---|---|---|"]
    for arm in results["runs"]:
        at = {r["step"]: r for r in arm["reports"]}
        last = arm["reports"][-1]
        cov = " / ".join(f"{at[s]['coverage']:.3f}" if s in at else "-"
                         for s in (1000, 2000, 3000, 4000))
        lines.append(f"| `{arm['policy']}` | {arm['seed']} | {cov} | {last['fid']:.1f} | "
                     f"{last['precision']:.2f} / {last['density']:.2f} | "
                     f"{arm['reports'][0]['loss_d']:.2f} → {last['loss_d']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--policies", nargs="+", default=["none", "translation"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--runs", default="runs/augment-probe")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--table", action="store_true", help="print --out as a table and exit")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads(Path(args.out).read_text())))
        return
    runs = [run_arm(Path(args.runs), p, s, args.steps) for s in args.seeds
            for p in args.policies]
    results = {"what": __doc__.split("\n")[0], "source": "quality.json digits-dcgan",
               "command": " ".join(["benchmarks/augment_probe.py", *sys.argv[1:]]),
               "runs": runs}
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
