"""A sweep's throughput with readers running against it, and without.

The readers are those of tests/readers.py, each a real process: optuna-dashboard serving the
study (its JSON API fetched every 0.5 s), `gansweep status --json` every second and `gansweep
report` in a loop. The sweep is a real `gansweep submit` of the MLP GAN on ring8 with several
trials in flight and its study in SQLite in the sweep directory (the default, and where readers
and the writer share one file).

What should be compared is contention through storage (the study's file lock, the trial
files), not for CPU: on a cluster the readers run on another machine. Here the sweep (driver,
Ray and its trials) is pinned to core 0 and the readers to core 1, in every arm alike; a third
arm runs a plain CPU burner on core 1 instead of the readers, which touches no storage at all,
so what the readers cost beyond it is what storage contention costs. Throughput is
configurations finished per minute between the first configuration's start and the last
one's end, read from the trial store (Ray's start-up is not in it). Arms rotate each round
(off, readers, burner; then readers, burner, off; ...) against drift of the machine's load.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/readers.py  -> benchmarks/results/readers.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TRIALS, STEPS, EVERY, IN_FLIGHT = 12, 400, 40, 3
SWEEP_CPUS, READER_CPUS = {0}, {1}


def spec(storage: Path, name: str) -> dict:
    return {"name": name, "trainer": "gan", "dataset": "ring8", "trials": TRIALS,
            "steps": STEPS, "report_every": EVERY, "metric": "modes_captured", "seed": 0,
            "fixed": {"width": 16, "batch_size": 64}, "max_concurrent": IN_FLIGHT,
            "resources": {"cpu": 1.0 / IN_FLIGHT}, "early_stop": {"collapse": False},
            "storage": str(storage)}


def throughput(sweep: Path) -> float:
    """Configurations per minute, first start to last end (from config.json / result.json)."""
    starts = [json.loads(p.read_text())["created"] for p in sweep.glob("trials/*/config.json")]
    ends = [json.loads(p.read_text())["finished"] for p in sweep.glob("trials/*/result.json")]
    assert len(ends) == TRIALS, f"{sweep}: {len(ends)} of {TRIALS} configurations ended"
    return 60.0 * len(ends) / (max(ends) - min(starts))


BURN = "import time\nwhile True: sum(i * i for i in range(10000))"


def run(tmp: Path, name: str, arm: str) -> dict:
    import yaml

    from gansweep.analysis.layout import META, OPTUNA_DB, read_meta
    from tests.readers import LOCKED, Readers

    spec_path = tmp / f"{name}.yaml"
    spec_path.write_text(yaml.safe_dump(spec(tmp, name)))
    ray_tmp = Path("/tmp") / f"gsb{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    log = open(tmp / f"{name}.log", "w")
    t0 = time.time()
    driver = subprocess.Popen([sys.executable, "-m", "gansweep", "submit", str(spec_path)],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              preexec_fn=lambda: os.sched_setaffinity(0, SWEEP_CPUS))
    sweep = tmp / name
    readers = burner = None
    if arm == "burn":
        burner = subprocess.Popen([sys.executable, "-c", BURN],
                                  preexec_fn=lambda: os.sched_setaffinity(0, READER_CPUS))
    if arm == "readers":
        while not (sweep / META).is_file() and driver.poll() is None:
            time.sleep(0.1)
        name_ = read_meta(sweep).study_name
        readers = Readers(str(sweep), f"sqlite:///{sweep / OPTUNA_DB}", name_,
                          tmp / f"{name}-report", cpus=READER_CPUS)
        readers.start(study_ready=lambda: (sweep / OPTUNA_DB).is_file())
    rc = driver.wait()
    wall = time.time() - t0
    if readers is not None:
        readers.stop()
    if burner is not None:
        burner.kill()
        burner.wait()
    log.close()
    subprocess.run(["pkill", "-9", "-f", str(ray_tmp)], check=False)  # idle Ray agents
    out = (tmp / f"{name}.log").read_text()
    row = {"arm": arm, "rc": rc, "locked_in_sweep_log": LOCKED in out,
           "configs_per_min": round(throughput(sweep), 3), "wall_s": round(wall, 1)}
    if readers is not None:
        calls = {c: [d for k, _, d in readers.timings if k == c] for c in ("status", "report")}
        row.update(status_calls=len(calls["status"]), report_runs=len(calls["report"]),
                   status_median_s=round(statistics.median(calls["status"]), 2),
                   report_median_s=round(statistics.median(calls["report"]), 2),
                   dashboard_reads=len(readers.dashboard_reads),
                   reader_failures=readers.failures)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    rows = []
    arms = ["off", "readers", "burn"]
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for arm in arms[i % 3:] + arms[:i % 3]:
                rows.append(run(Path(tmp), f"r{i}-{arm}", arm))
    per = {a: [r["configs_per_min"] for r in rows if r["arm"] == a] for a in arms}
    med = {a: statistics.median(v) for a, v in per.items()}
    result = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/readers.py",
        "sweep": {"trials": TRIALS, "steps": STEPS, "report_every": EVERY,
                  "in_flight": IN_FLIGHT, "study": "sqlite in the sweep directory",
                  "cpus": sorted(SWEEP_CPUS)},
        "readers": {"what": "optuna-dashboard (API every 0.5 s), gansweep status --json every "
                            "1 s, gansweep report in a loop", "cpus": sorted(READER_CPUS)},
        "configs_per_min": per, "median": med,
        "ratio_readers_off": round(med["readers"] / med["off"], 3),
        "ratio_burn_off": round(med["burn"] / med["off"], 3),
        "ratio_readers_burn": round(med["readers"] / med["burn"], 3),
        "per_round_readers_off": [round(a / b, 3) for a, b in zip(per["readers"], per["off"])],
        "per_round_readers_burn": [round(a / b, 3)
                                   for a, b in zip(per["readers"], per["burn"])],
        "target": "readers / off >= 0.9",
        "failures": [r for r in rows if r["rc"] or r["locked_in_sweep_log"]
                     or r.get("reader_failures")],
        "runs": rows,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "loadavg_1m_before_after": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }
    out = ROOT / "benchmarks" / "results" / "readers.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
