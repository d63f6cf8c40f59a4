"""Ten thousand configurations through `gansweep submit`: does anything grow with the count?

The sweep-overhead benchmark's trivial trainable (the MLP GAN on gauss1d, 2 steps, scored the
same way), collapse stopping off, one seed per configuration, 2 at a time, driven by the real
CLI in its own process group. About halfway it is SIGKILLed and `gansweep resume` finishes it.
Measured: the per-configuration time of the first and the last 1000 (and just before and
after the kill), the driver's resident memory (sampled every second from /proc), `gansweep
status` and `gansweep report` wall times on the finished sweep, and that nothing was lost or
repeated across the kill.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py [--configs 10000] [--sampler tpe]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale.py --uninterrupted   # no kill
    .venv/bin/python benchmarks/scale.py --samplers   # the samplers' suggestion cost by size

Writes benchmarks/results/scale.json.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = Path(__file__).parent / "results"


def spec(storage: Path, configs: int, sampler: str) -> dict:
    return {"name": "scale", "trainer": "gan", "dataset": "gauss1d", "trials": configs,
            "steps": 2, "report_every": 1, "metric": "fid", "seed": 0, "seeds": 1,
            "sampler": sampler, "fixed": {"width": 8, "batch_size": 32},
            "early_stop": {"collapse": False}, "max_concurrent": 2, "storage": str(storage)}


class Driver:
    """`gansweep submit|resume` in its own process group, its RSS sampled every second."""

    def __init__(self, args: list[str], log: Path, tmp: Path):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_TMPDIR": str(tmp),
               "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "gansweep", *args], cwd=ROOT,
                                     env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.rss: list[tuple[float, int]] = []
        self.t0 = time.time()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self.proc.poll() is None:
            try:
                for line in open(f"/proc/{self.proc.pid}/status"):
                    if line.startswith("VmRSS:"):
                        self.rss.append((time.time() - self.t0, int(line.split()[1]) * 1024))
            except OSError:
                return
            time.sleep(1.0)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self) -> int:
        return self.proc.wait()


def ended_times(root: Path) -> list[float]:
    """When each configuration's result was written, in order."""
    out = []
    for p in (root / "trials").glob("*/result.json"):
        out.append(json.loads(p.read_text())["finished"])
    return sorted(out)


def per_config(times: list[float], start: int, n: int = 1000) -> float:
    """Seconds per configuration over the n ended after the first `start`."""
    seg = times[start:start + n + 1]
    return (seg[-1] - seg[0]) / (len(seg) - 1)


def clean(tmp: Path) -> None:
    subprocess.run(["pkill", "-9", "-f", str(tmp)], check=False)


def run(configs: int, sampler: str, work: Path, kill: bool = True) -> dict:
    """`kill`: SIGKILL the driver halfway and finish with `gansweep resume`; else one
    uninterrupted driver run (which starts a fresh Ray Tune experiment every
    jobs.submit.TRIALS_PER_EXPERIMENT trials)."""
    import yaml

    spec_path = work / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec(work, configs, sampler)))
    root = work / "scale"
    tmp = Path("/tmp") / f"scl{os.getpid()}"
    first = Driver(["submit", str(spec_path)], work / "run0.log", tmp)
    if kill:
        kill_at = configs // 2
        while first.proc.poll() is None and \
                len(list((root / "trials").glob("*/result.json"))) < kill_at:
            time.sleep(2.0)
        before_kill = ended_times(root)
        first.kill()
        clean(tmp)
        second = Driver(["resume", str(root)], work / "run1.log", tmp)
        rc = second.wait()
    else:
        rc = first.wait()
        second, before_kill = None, []
    clean(tmp)
    times = ended_times(root)
    k = len(before_kill)
    t0 = time.perf_counter()
    status = subprocess.run([sys.executable, "-m", "gansweep", "status", str(root)], cwd=ROOT,
                            capture_output=True, text=True)
    status_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = subprocess.run([sys.executable, "-m", "gansweep", "report", str(root), "--out",
                             str(work / "report")], cwd=ROOT, capture_output=True, text=True)
    report_s = time.perf_counter() - t0
    keys = collections.Counter()
    for p in (root / "trials").glob("*/config.json"):
        c = json.loads(p.read_text())
        keys[json.dumps(c["config"], sort_keys=True)] += 1
    reports = collections.Counter()
    for p in root.glob("tune/*/trial_*/result.json"):
        for line in p.read_text().splitlines():
            r = json.loads(line)
            if not r.get("reused") and "key" in r:
                reports[(r["key"], int(r["step"]))] += 1
    rss = [b for _, b in first.rss + (second.rss if second else [])]
    early = [b for t, b in first.rss if t > 30][:5] or rss[:5]
    per = {"first_1000": per_config(times, 0),
           "last_1000": per_config(times, len(times) - 1001)}
    per["last_over_first"] = per["last_1000"] / per["first_1000"]
    if kill:
        per.update({"1000_before_kill": per_config(before_kill, max(0, k - 1001)),
                    "1000_after_resume": per_config(times, k + 10)})
    memory = {"early": min(early) if early else None, "peak": max(rss) if rss else None,
              "peak_first_run": max(b for _, b in first.rss)}
    if memory["early"] and memory["peak"]:
        memory["growth"] = memory["peak"] - memory["early"]
    if second:
        memory["peak_resumed_run"] = max(b for _, b in second.rss)
    return {
        "configurations": configs, "sampler": sampler, "killed": kill, "exit_code": rc,
        "ended": len(times), "killed_after": k if kill else None,
        "tune_experiments": sorted(p.name for p in (root / "tune").iterdir() if p.is_dir()),
        "per_config_s": per, "driver_rss_bytes": memory,
        "status_s": round(status_s, 2), "status_ok": status.returncode == 0,
        "report_s": round(report_s, 2), "report_ok": report.returncode == 0,
        "distinct_configurations": len(keys), "repeated_configurations":
            sum(1 for n in keys.values() if n > 1),
        "reports_trained_twice": sum(1 for n in reports.values() if n > 1),
        "sampler_switches": [line.strip() for log in ("run0.log", "run1.log")
                             if (work / log).is_file()
                             for line in (work / log).read_text().splitlines()
                             if "sampler auto" in line],
    }


def sampler_costs(sizes=(100, 300, 1000, 3000)) -> dict:
    """ask+tell seconds per trial at each study size, per sampler a spec can name (`auto` is
    TPE until a sweep's run times switch it), on the `gan` family's default space, in memory
    so storage is not what is timed."""
    import optuna

    from gansweep.jobs.samplers import make_sampler
    from gansweep.search_spaces import make_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = make_space("gan", {}, {"width": 8}, 2)
    out: dict = {}
    for name in ("tpe", "random", "cmaes", "gp"):  # auto is TPE until a sweep switches it
        study = optuna.create_study(sampler=make_sampler(name, 0), direction="minimize")
        rng = __import__("random").Random(0)
        done, row = 0, {}
        for size in sizes:
            if name == "gp" and size > 300:
                row[str(size)] = None  # cubic in the trials: not run past a few hundred
                continue
            t_mark = None
            while done < size:
                if done == size - 20:
                    t_mark = time.perf_counter()
                t = study.ask()
                p = space(t)
                study.tell(t, (p["lr_g"] - 1e-3) ** 2 + rng.random() * 1e-6)
                done += 1
            row[str(size)] = (time.perf_counter() - t_mark) / 20
        out[name] = row
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", type=int, default=10_000)
    p.add_argument("--sampler", default="auto",
                   help="the spec's sampler (auto: what a sweep of cheap runs should use)")
    p.add_argument("--samplers", action="store_true", help="time the samplers only")
    p.add_argument("--sizes", default="100,300,1000,3000",
                   help="study sizes the samplers are timed at (with --samplers)")
    p.add_argument("--out", default=str(RESULTS / "scale.json"))
    p.add_argument("--keep", default=None, help="a new directory to leave the sweep in")
    p.add_argument("--uninterrupted", action="store_true",
                   help="one driver run from start to end (recorded as sweep_SAMPLER_"
                        "uninterrupted), instead of a SIGKILL halfway and a resume")
    args = p.parse_args()
    path = Path(args.out)
    merged = json.loads(path.read_text()) if path.is_file() else {}
    if args.samplers:
        merged["sampler_seconds_per_trial"] = sampler_costs(
            tuple(int(x) for x in args.sizes.split(",")))
    else:
        if args.keep:
            Path(args.keep).mkdir(parents=True)
            res = run(args.configs, args.sampler, Path(args.keep), not args.uninterrupted)
        else:
            with tempfile.TemporaryDirectory(prefix="scale-") as work:
                res = run(args.configs, args.sampler, Path(work), not args.uninterrupted)
        res["load_average"] = os.getloadavg()
        suffix = "_uninterrupted" if args.uninterrupted else ""
        merged[f"sweep_{args.sampler}{suffix}"] = res
    path.write_text(json.dumps(merged, indent=1))
    print(json.dumps(merged, indent=1))


if __name__ == "__main__":
    main()
