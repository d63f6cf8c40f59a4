"""What a sweep returns, trained again on seeds it never saw, against the published tables.

Per search: a complete sweep through `gansweep submit` (seed racing on, an hour budget that
bounds its wall time on this machine, its own seed checks included), then the configuration
it returns trained on 5 fresh seeds through `gansweep train --from` (timed separately) and
scored: modes captured, high-quality fraction and reverse KL on mixtures (2500 samples, the
PacGAN/VEEGAN definitions); the evaluator's class histogram and coverage on digits, beside
the coverage of real held-out digits against real training digits at the same n.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py --dataset ring8
    (ring8, grid25, digits-dcgan, digits-dcgan-r1, digits-wgan-gp; one at a time)

A lever or a shorter search: `--hours 0.25`, `--set seeds.reserve=true`, `--warm-start DIR`
(an earlier sweep kept with `--keep DIR`), `--seed N` (the search's seed), each result named
with `--as NAME` in `--out FILE`; `--table --out FILE` prints a results file as the docs show it.
`--answer-steps N` trains the returned configuration N steps on the fresh seeds (ranked on
shorter runs, trained longer). No search: `--given-from [FILE:]ENTRY --steps N --fresh SEEDS
--as NAME` trains what a recorded search returned (a lever such as longer runs), judged by
that search's wall time; `--given KEY=VALUE` sets a configuration by hand or changes one
setting of it.

Writes benchmarks/results/quality.json (merged per search), including each returned
configuration with every hyperparameter as `gansweep train --set` takes it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

RESULTS = Path(__file__).parent / "results"
FRESH_SEEDS = 5
PUBLISHED = {  # PacGAN (Lin et al. 2018), 2D-ring and 2D-grid tables: means over runs
    "ring8": [("GAN", 6.3, 98.2), ("PacGAN2", 7.9, 95.6)],
    "grid25": [("PacGAN3", 24.6, 94.2), ("PacGAN4", 24.8, 93.6)],
}
TARGETS = {"ring8": (7.9, 0.96), "grid25": (24.8, 0.94)}
# Issue 31's rows: per search, (the longest search it allows in minutes, its quality bar).
ISSUE_31 = {"ring8": [(10, {"modes": 8.0, "hq": 0.96}),
                      (30, {"modes": 8.0, "hq": 0.983, "reverse_kl": 0.01})],
            "grid25": [(15, {"modes": 25.0, "hq": 0.96}), (45, {"modes": 25.0, "hq": 0.98})],
            "digits-dcgan": [(30, {"coverage_of_real": 0.9, "every_class": 0.07})],
            "digits-wgan-gp": [(30, {"coverage_of_real": 0.9, "every_class": 0.07})]}
for _other in ("digits-dcgan-r1", "digits-dcgan-r1-3k"):  # other searches for the same row
    ISSUE_31[_other] = ISSUE_31["digits-dcgan"]
IMAGE = {"name": "digits", "image_size": 16}
# Chosen from benchmarks/stabilisers_probe.py on development seeds 0-2 (README, "Stabilisers
# on the mixtures"): an average of G's weights (ema 0.999) steadies the last snapshot that a
# run is judged by; the searches look for the learning rates, batch, width and depth around it.
SEARCHES = {
    "ring8": {"trainer": "gan", "dataset": "ring8", "metric": "mixture_score",
              "steps": 15000, "report_every": 1000, "hours": 0.5,
              "space": {"lr_g": {"low": 2e-4, "high": 3e-3, "log": True},
                        "lr_d": {"low": 2e-4, "high": 3e-3, "log": True},
                        "batch_size": {"choices": [64, 128, 256]},
                        "beta1": {"choices": [0.0, 0.5]},
                        "width": {"choices": [128, 256]}, "depth": {"choices": [2, 3]}},
              "fixed": {"ema": 0.999, "code_length": 2, "minibatch_disc": False}},
    "grid25": {"trainer": "gan", "dataset": "grid25", "metric": "mixture_score",
               "steps": 30000, "report_every": 2000, "hours": 0.75,
               "space": {"lr_g": {"low": 2e-4, "high": 2e-3, "log": True},
                         "lr_d": {"low": 2e-4, "high": 2e-3, "log": True},
                         "beta1": {"choices": [0.0, 0.5]},
                         "width": {"choices": [128, 256]}},
               "fixed": {"ema": 0.999, "batch_size": 256, "code_length": 2,
                         "minibatch_disc": False}},
    # Digits: probes of single runs on development seed 0 (README, "What a sweep returns")
    # put width 32 at a coverage ceiling near 0.6-0.7 whatever the rates; width 64 with a
    # slower D and a decaying rate reached 0.8, so the searches look around that.
    "digits-dcgan": {"trainer": "dcgan", "dataset": IMAGE, "metric": "coverage",
                     "steps": 4000, "report_every": 500, "hours": 0.5,
                     "space": {"lr_g": {"low": 2e-4, "high": 1e-3, "log": True},
                               "lr_d": {"low": 2e-5, "high": 1.5e-4, "log": True},
                               "lr_half_life": {"choices": [1000.0, 2000.0]},
                               "ema": {"choices": [0.0, 0.99]},
                               "batch_size": {"choices": [64, 128]}},
                     "fixed": {"width": 64, "code_length": 100, "beta1": 0.5,
                               "loss": "nonsaturating"}},
    # The R1 penalty lets D run fast (an unpenalised fast D falls to 0.58): two searches over
    # it (quality_short.json, `-r1-search`, `-s1`) scored highest where lr_d and lr_g were
    # highest and always chose r1_gamma 1 and half-life 4000, so this one looks only there.
    "digits-dcgan-r1": {"trainer": "dcgan", "dataset": IMAGE, "metric": "coverage",
                        "steps": 4000, "report_every": 500, "hours": 0.495,
                        "space": {"lr_g": {"low": 4e-4, "high": 1.2e-3, "log": True},
                                  "lr_d": {"low": 1.2e-4, "high": 4e-4, "log": True},
                                  "r1_gamma": {"choices": [0.3, 1.0]}},
                        "fixed": {"width": 64, "code_length": 100, "beta1": 0.5,
                                  "loss": "nonsaturating", "ema": 0.99, "batch_size": 128,
                                  "lr_half_life": 4000.0},
                        "budget": {"finish_leaders": True}},
    "digits-wgan-gp": {"trainer": "wgan-gp", "dataset": IMAGE, "metric": "coverage",
                       "steps": 2500, "report_every": 500, "hours": 0.5,
                       "space": {"n_critic": {"low": 2, "high": 5},
                                 "lr_g": {"low": 1e-4, "high": 5e-4, "log": True},
                                 "lr_d": {"low": 1e-4, "high": 5e-4, "log": True},
                                 "ema": {"choices": [0.0, 0.99]}},
                       "fixed": {"width": 64, "batch_size": 64, "code_length": 100,
                                 "beta1": 0.0, "gp_lambda": 10.0}},
}
# In the three R1 searches before it, the configuration ranked first at 3000 steps was the
# one ranked first at 4000, and the answers gained from 4000 to 5000 steps: this one ranks on
# 3000-step runs to try more configurations in the same time, and trains its answer 5000.
SEARCHES["digits-dcgan-r1-3k"] = {**SEARCHES["digits-dcgan-r1"], "steps": 3000,
                                  "answer_steps": 5000}


def spec_for(name: str, storage: str, seed: int = 0, hours: float | None = None) -> dict:
    s = SEARCHES[name]
    return {"name": f"quality-{name}", "trainer": s["trainer"], "dataset": s["dataset"],
            "metric": s["metric"], "steps": s["steps"], "report_every": s["report_every"],
            "seed": seed, "space": s["space"], "fixed": s["fixed"],
            "budget": {**s.get("budget", {}), "hours": hours or s["hours"]},
            "seeds": dict(s.get("seeds", {"count": 3, "top": 3})), "max_concurrent": 2,
            "storage": storage}


def levers(spec) -> dict:
    """What shaped the search besides its space: recorded with every result."""
    fixed = dict(spec.fixed)
    return {"seed_racing": dict(spec.seeds), "ema": fixed.get("ema", 0.0),
            "standing_statistics": bool(fixed.get("ema")) and spec.trainer in
            ("dcgan", "wgan", "wgan-gp"),
            "lr_half_life": fixed.get("lr_half_life", "searched" if "lr_half_life" in
                                      spec.space else None),
            "early_stop": {k: v for k, v in dict(spec.early_stop).items() if v},
            "warm_start": None if spec.warm_start is None else dict(spec.warm_start),
            "finish_leaders": bool(spec.budget.get("finish_leaders")),
            "augment": fixed.get("augment", "searched" if "augment" in spec.space else "none")}


def cli(*args: str, timeout: float = 7200) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "gansweep", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode:
        raise RuntimeError(f"gansweep {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return proc


def last_row(run: Path) -> dict:
    import csv

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    return {k: float(v) for k, v in rows[-1].items() if v not in ("", "True", "False")}


def curve(run: Path) -> dict[str, list]:
    """The run's score at every report, [step, value] pairs per metric (a run judged by its
    last report may have peaked before it)."""
    import csv

    out: dict[str, list] = {}
    for r in csv.DictReader(open(run / "metrics.csv")):
        for k in CURVE & set(r):
            if r[k] not in ("", "True", "False"):
                out.setdefault(k, []).append([int(float(r["step"])), float(r[k])])
    return out


CURVE = {"coverage", "hq_fraction", "modes_captured", "reverse_kl", "mixture_score"}


def fresh_seed_runs(work: Path, seeds: list[int], source: list[str]) -> list[dict]:
    """What `gansweep train` is given in `source` (`--from SWEEP_DIR`, or a trainer and its
    settings) trained on each fresh seed, two at a time (the cores). A run already in `work`
    (a kept folder) is continued from its checkpoint to the steps asked, `gansweep train
    --resume` (bit for bit the longer run; it refuses other settings), and says from where."""
    def one(seed: int) -> dict:
        out = work / f"fresh-{seed}"
        kept = (out / "checkpoint" / "state.pt").is_file()
        start = int(last_row(out)["step"]) if kept and (out / "metrics.csv").is_file() else 0
        cli("train", *source, "--seed", str(seed), "--out", str(out),
            *(["--resume"] if kept else []))
        row = last_row(out)
        ran = json.loads((out / "config.json").read_text())["config"]
        return {"seed": seed, **{k: row[k] for k in row if k in KEEP or k.startswith(
            "class_hist_")}, "config": ran, "curve": curve(out),
            **({"resumed_from": start} if kept else {})}

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, seeds))


KEEP = {"step", "modes_captured", "hq_fraction", "reverse_kl", "mixture_score", "coverage",
        "fid", "precision", "recall", "density", "classes_covered", "class_kl", "time_s"}


def real_coverage(dataset) -> float:
    """Coverage of real training images against the held-out split at the scoring n."""
    from gansweep.analysis.metrics import default_n, score
    from gansweep.trainers.data import load_dataset

    data = load_dataset(dataset)
    n = default_n(data)
    x = data.train[np.random.default_rng(0).permutation(len(data.train))[:n]]
    return score(x, data, full=True)["coverage"]


def judge(name: str, runs: list[dict]) -> dict:
    modes = [r.get("modes_captured") for r in runs]
    out: dict = {}
    if name in TARGETS:
        want_m, want_hq = TARGETS[name]
        hq = [r["hq_fraction"] for r in runs]
        out = {"modes_mean": float(np.mean(modes)), "hq_mean": float(np.mean(hq)),
               "hq_std": float(np.std(hq, ddof=1)), "reverse_kl_mean":
               float(np.mean([r["reverse_kl"] for r in runs])),
               "target": {"modes": want_m, "hq": want_hq},
               "met": bool(np.mean(modes) >= want_m and np.mean(hq) >= want_hq)}
    else:
        hist = [[r.get(f"class_hist_{i}", 0.0) for i in range(10)] for r in runs]
        cov = [r["coverage"] for r in runs]
        out = {"coverage_mean": float(np.mean(cov)), "coverage_std":
               float(np.std(cov, ddof=1)), "smallest_class_share_mean":
               float(np.mean([min(h) for h in hist])), "class_hist_mean":
               [float(v) for v in np.mean(hist, axis=0)],
               "target": {"every_class_share": 0.05, "coverage": 0.8},
               "met": bool(all(min(h) >= 0.05 for h in hist) and np.mean(cov) >= 0.8)}
    return out


def issue_row(name: str, out: dict) -> dict | None:
    """The issue-31 row a search answers (the shortest whose time it fits, by its budget)
    and whether the returned configuration met it, time included."""
    rows = issue_rows(name, out, out["hours_budget"], out["search_wall_s"])
    return rows[0] if rows else None


def issue_rows(name: str, out: dict, hours: float, wall_s: float) -> list[dict]:
    """Every issue-31 row a search of `hours` budget fits, each judged on `out`'s fresh seeds
    and `wall_s` of search: a search's answer trained longer can answer a longer row too."""
    judged = []
    for limit, bar in ISSUE_31.get(name, []):
        if hours * 60 > limit + 0.01:
            continue
        if "modes" in bar:
            quality = (out["modes_mean"] >= bar["modes"] and out["hq_mean"] >= bar["hq"]
                       and out["reverse_kl_mean"] <= bar.get("reverse_kl", float("inf")))
            other = {}
        else:
            hists = [[r.get(f"class_hist_{i}", 0.0) for i in range(10)]
                     for r in out["fresh_runs"]]
            coverage = out["coverage_mean"] >= bar["coverage_of_real"] * \
                out["real_vs_real_coverage"]
            quality = coverage and all(min(h) >= bar["every_class"] for h in hists)
            # The issue's targets are means over the fresh seeds; the floor is judged on every
            # seed (stricter), and on the seeds' mean class shares beside it.
            other = {"quality_met_on_mean_classes": bool(
                coverage and min(np.mean(hists, axis=0)) >= bar["every_class"])}
        in_time = wall_s <= 60 * limit
        judged.append({"minutes": limit, **bar, "quality_met": bool(quality), **other,
                       "in_time": bool(in_time), "met": bool(quality and in_time)})
    return judged


def met_cell(j: dict) -> str:
    """An issue row's quality verdict; where the class floor holds on the seeds' mean but not
    on every seed, both."""
    if not j["quality_met"] and j.get("quality_met_on_mean_classes"):
        return "no (yes on the seeds' mean classes)"
    return "yes" if j["quality_met"] else "no"


def run(name: str, work: Path, seed: int = 0, hours: float | None = None,
        sets: list[str] | None = None, answer_steps: int | None = None) -> dict:
    """`sets`: spec overrides a lever adds, as `gansweep submit --set` takes them."""
    from gansweep.jobs.spec import apply_sets, parse_spec
    from gansweep.jobs.submit import submit

    spec = parse_spec(apply_sets(spec_for(name, str(work), seed, hours), sets or []))
    t0 = time.perf_counter()
    root = submit(spec, log=print)
    return scored(name, spec, root, time.perf_counter() - t0, work, answer_steps)


def kept(name: str, sweep_dir: Path, answer_steps: int | None = None) -> dict:
    """A kept sweep whose fresh seeds were never trained (the benchmark stopped after the
    search): scored now, its search time read from its driver runs' record."""
    from gansweep.jobs.sweep_dir import open_existing

    spec, meta = open_existing(sweep_dir)
    if spec.name != f"quality-{name}":
        raise LookupError(f"--score-kept {sweep_dir} is the sweep {spec.name!r}, not "
                          f"quality-{name}")
    out = scored(name, spec, sweep_dir.resolve(), meta.spent_seconds(), sweep_dir.parent,
                 answer_steps)
    out["search_wall_from"] = "the sweep's driver runs (sweep.json), started to last seen"
    return out


def scored(name: str, spec, root: Path, search_s: float, work: Path,
           answer_steps: int | None = None) -> dict:
    """The search's record and what it returned, trained on fresh seeds in `work` for
    `answer_steps` (`gansweep train --from SWEEP_DIR --steps N`; by default the search's own
    entry says, else the steps its runs had)."""
    from gansweep.jobs.frozen import thaw
    from gansweep.jobs.status import collect
    from gansweep.jobs.train_cmd import returned_configuration

    s = collect(root)
    got = returned_configuration(root)
    fresh = list(range(got["seed"], got["seed"] + FRESH_SEEDS))
    t1 = time.perf_counter()
    answer = answer_steps or SEARCHES[name].get("answer_steps") or spec.steps
    runs = fresh_seed_runs(work, fresh, ["--from", str(root), "--steps", str(answer)])
    out = {"search": name, "trainer": spec.trainer, "dataset": spec.dataset,
           # the spec's own: a lever's --set may have changed them
           "steps": spec.steps, "answer_steps": answer, "metric": spec.metric,
           "space": thaw(spec.space),
           "fixed": thaw(spec.fixed), "seeds_rule": dict(spec.seeds),
           "search_wall_s": round(search_s, 1), "hours_budget": spec.budget["hours"],
           "search_seed": spec.seed, "levers": levers(spec), "steps_spent": s["steps_spent"],
           "sweep_dir": str(root),
           "configurations": s["configurations"], "runs": s["runs"],
           "counts": s["counts"], "returned": {
               "key": s["best"]["key"], "sweep_value": s["best"]["metric"],
               "sweep_std": s["best"]["std"], "sweep_seeds": s["best"]["seed_list"],
               "set": [f"{k}={v}" for k, v in sorted(got["config"].items())]},
           "fresh_seeds": fresh, "fresh_wall_s": round(time.perf_counter() - t1, 1),
           "fresh_runs": runs, **judge(name, runs)}
    if name.startswith("digits"):
        out["real_vs_real_coverage"] = real_coverage(spec.dataset)
    out["issue_31"] = issue_row(name, out)
    if name in PUBLISHED:
        out["published"] = [{"row": r, "modes": m, "hq_percent": h} for r, m, h in
                            PUBLISHED[name]]
    return out


def given(name: str, work: Path, sets: list[str], steps: int | None,
          seeds: list[int], source: dict | None = None) -> dict:
    """No search: a configuration given as `gansweep train --set`s (one a search returned
    earlier, or it with a lever such as more steps) trained on `seeds` with the search's
    trainer, data and report cadence. `source`: the search it came from (`returned_by`),
    whose wall time judges it against the issue's rows."""
    s = SEARCHES[name]
    data = s["dataset"] if isinstance(s["dataset"], str) else s["dataset"]["name"]
    steps = steps or s["steps"]
    source_args = [s["trainer"], "--dataset", data,
                   *(a for kv in sets for a in ("--set", kv)),
                   "--steps", str(steps), "--report-every", str(min(steps, s["report_every"]))]
    t1 = time.perf_counter()
    runs = fresh_seed_runs(work, seeds, source_args)
    out = {"search": name, "given": True, "trainer": s["trainer"], "dataset": s["dataset"],
           "steps": steps, "metric": s["metric"], "returned": {"set": sorted(sets)},
           "fresh_seeds": seeds, "fresh_wall_s": round(time.perf_counter() - t1, 1),
           "fresh_runs": runs, **judge(name, runs)}
    if name.startswith("digits"):
        out["real_vs_real_coverage"] = real_coverage(s["dataset"])
    if source is not None:
        out["from"] = source
        dev = development_seeds(out)
        if dev:
            out["development_seeds"] = dev
        else:
            out["issue_31"] = issue_rows(name, out, source["hours_budget"],
                                         source["search_wall_s"])
    return out


def development_seeds(r: dict) -> list[int]:
    """The seeds of a `--given-from` result that its search judged configurations on: a probe
    chooses on those, and only seeds outside them can say whether the choice holds, so a result
    with any is not judged against issue 31 (read from the record, so older results too)."""
    src = r.get("from") or {}
    return sorted(set(r.get("fresh_seeds", [])) & set(src.get("sweep_seeds", [])))


def returned_by(ref: str, default: Path) -> tuple[dict, list[str]]:
    """`ENTRY` of the results file `default`, or `FILE:ENTRY`: the search it records and the
    configuration it returned, as `gansweep train --set`s."""
    path, _, entry = ref.rpartition(":")
    path = Path(path) if path else default
    results = json.loads(path.read_text()) if path.is_file() else {}
    if entry not in results or results[entry].get("given"):
        searches = ", ".join(k for k, v in results.items() if not v.get("given")) or "none"
        raise LookupError(f"--given-from: {path} has no search named {entry!r} "
                          f"(its searches: {searches})")
    r = results[entry]
    try:
        where = str(path.resolve().relative_to(ROOT))
    except ValueError:
        where = str(path)
    return ({"file": where, "entry": entry, "search": r["search"], "steps": r["steps"],
             "search_wall_s": r["search_wall_s"], "hours_budget": r["hours_budget"],
             "sweep_seeds": r["returned"]["sweep_seeds"]}, list(r["returned"]["set"]))


def overridden(sets: list[str], more: list[str]) -> list[str]:
    """`sets` with each KEY=VALUE of `more` in place of the same key's."""
    merged = dict(kv.split("=", 1) for kv in sets)
    merged.update(kv.split("=", 1) for kv in more)
    return [f"{k}={v}" for k, v in merged.items()]


def changed(r: dict, path: Path) -> list[str]:
    """What a `--given-from` row trained that its search did not return (its `--given`s), read
    from the search's own record."""
    src = r.get("from")
    if not src:
        return []
    where = Path(src["file"]) if Path(src["file"]).is_absolute() else ROOT / src["file"]
    try:
        _, returned = returned_by(f"{where}:{src['entry']}", path)
    except LookupError:
        return []
    return sorted(set(r["returned"]["set"]) - set(returned))


def table(path: Path) -> str:
    """The results in `path` as the docs' markdown table, one row per search."""
    lines = ["| search | levers | search wall | steps | configs / runs | returned on seeds | "
             "fresh seeds | modes | high quality | reverse KL | coverage | issue 31 row | quality "
             "met | in time |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in json.loads(path.read_text()).items():
        quality = [f"{r['modes_mean']:.1f}", f"{100 * r['hq_mean']:.1f} % ± "
                   f"{100 * r['hq_std']:.1f}", f"{r['reverse_kl_mean']:.4f}", "-"] \
            if "modes_mean" in r else ["-", "-", "-", f"{r['coverage_mean']:.3f}"]
        if r.get("given"):  # no search: a configuration trained as given
            src, dev = r.get("from"), development_seeds(r)
            rows = [] if dev else r.get("issue_31") or []
            unjudged = ["not judged (development seeds)", "-", "-"] if dev else []
            lines.append(" | ".join([
                f"| {name}", f"given, {r['steps']:,} steps a run" +
                (f", as {src['entry']} returned" if src else "") +
                "".join(f", with {kv}" for kv in changed(r, path)),
                f"{src['search_wall_s'] / 60:.1f} min ({src['entry']})" if src else "-",
                "-", "-", "-", f"{r['fresh_seeds'][0]}-{r['fresh_seeds'][-1]}" +
                (" (development)" if dev else ""), *quality, *(unjudged or [
                    "; ".join(f"≤ {j['minutes']} min" for j in rows) or "-",
                    "; ".join(met_cell(j) for j in rows) or "-",
                    "; ".join("yes" if j["in_time"] else "no" for j in rows) or "-"])]) + " |")
            continue
        lv = r.get("levers") or {}
        on = [k for k in ("finish_leaders",) if lv.get(k)]
        if r.get("answer_steps") not in (None, r.get("steps")):  # None: written before it
            on.append(f"answer trained {r['answer_steps']:,} steps")
        if lv.get("warm_start"):
            on.append("warm_start")
        if lv.get("augment", "none") != "none":
            on.append(f"augment {lv['augment']}")
        row = issue_row(r["search"], r)  # today's rule, also for results written before it
        bar = "-" if row is None else f"≤ {row['minutes']} min"
        lines.append(" | ".join([
            f"| {name}", ", ".join(on) or "-", f"{r['search_wall_s'] / 60:.1f} min",
            f"{r.get('steps_spent', 0) / 1000:.0f} k", f"{r['configurations']} / {r['runs']}",
            ",".join(map(str, r["returned"]["sweep_seeds"])),
            f"{r['fresh_seeds'][0]}-{r['fresh_seeds'][-1]}", *quality, bar,
            *(["-", "-"] if row is None else [met_cell(row),
                                              "yes" if row["in_time"] else "no"])]) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=list(SEARCHES))
    p.add_argument("--seed", type=int, default=0, help="the search's seed")
    p.add_argument("--hours", type=float, default=None, help="override the search's budget")
    p.add_argument("--out", default=str(RESULTS / "quality.json"))
    p.add_argument("--as", dest="entry", default=None,
                   help="the result's name in --out (default: the dataset)")
    p.add_argument("--keep", default=None,
                   help="a folder to keep the sweep in (a later --warm-start source); with "
                        "--given or --given-from, the runs, which a later call with more "
                        "--steps continues from their checkpoints")
    p.add_argument("--warm-start", default=None, help="an earlier sweep directory")
    p.add_argument("--score-kept", default=None, metavar="SWEEP_DIR",
                   help="no new search: train what a kept search (--keep) returned on fresh "
                        "seeds, for one whose fresh seeds never ran")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a spec override, as `gansweep submit --set` takes it (a lever)")
    p.add_argument("--given", action="append", default=[], metavar="KEY=VALUE",
                   help="no search: train this configuration (as `gansweep train --set` takes "
                        "it) on --fresh seeds")
    p.add_argument("--given-from", default=None, metavar="[FILE:]ENTRY",
                   help="no search: train the configuration that search returned (an entry of "
                        "--out, or of FILE), with any --given in place of its settings; judged "
                        "by that search's wall time")
    p.add_argument("--steps", type=int, default=None,
                   help="with --given or --given-from: steps a run")
    p.add_argument("--fresh", type=int, nargs="+", default=None,
                   help="with --given or --given-from: the seeds (ones no search or choice "
                        "used; with --given-from, seeds its search judged on are recorded as "
                        "development seeds and not judged)")
    p.add_argument("--answer-steps", type=int, default=None,
                   help="with a search or --score-kept: train the returned configuration this "
                        "many steps on the fresh seeds (default: the search's entry, else its "
                        "runs' steps)")
    p.add_argument("--table", action="store_true", help="print --out as a table and exit")
    args = p.parse_args()
    if args.table:
        print(table(Path(args.out)))
        return
    if args.dataset is None:
        p.error("--dataset is required")
    source, sets = None, list(args.given)
    if args.given_from:
        try:
            source, returned = returned_by(args.given_from, Path(args.out))
        except LookupError as e:
            p.error(str(e))
        if source["search"] != args.dataset:
            p.error(f"--given-from {args.given_from} is a {source['search']} search, "
                    f"not --dataset {args.dataset}")
        sets = overridden(returned, args.given)
    if sets and args.answer_steps:
        p.error("--answer-steps trains what a search returned; with --given or --given-from, "
                "give the steps with --steps")
    if sets and not (args.fresh and args.entry):
        p.error("--given and --given-from need --fresh SEED... and --as NAME")
    if sets and args.keep:  # the runs stay there: a later call continues them to more steps
        steps = args.steps or SEARCHES[args.dataset]["steps"]
        ahead = [s for s in args.fresh if (Path(args.keep) / f"fresh-{s}" / "metrics.csv")
                 .is_file() and last_row(Path(args.keep) / f"fresh-{s}")["step"] > steps]
        if ahead:  # a run cannot be taken back to fewer steps
            p.error(f"--keep {args.keep}: the runs of seeds {ahead} are past {steps} steps; "
                    "give at least their steps or another --keep folder")
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        res = given(args.dataset, Path(args.keep).resolve(), sets, args.steps, args.fresh,
                    source)
    elif sets:
        with tempfile.TemporaryDirectory(prefix="quality-") as work:
            res = given(args.dataset, Path(work), sets, args.steps, args.fresh, source)
    if sets:
        save(Path(args.out), args.entry, res)
        return
    if args.score_kept:
        from gansweep.trainers.errors import ConfigError

        try:
            res = kept(args.dataset, Path(args.score_kept), args.answer_steps)
        except (LookupError, ConfigError) as e:
            p.error(str(e))
        save(Path(args.out), args.entry or args.dataset, res)
        return
    from gansweep.jobs.submit import local_ray

    sets = list(args.set)
    if args.warm_start:
        sets.append(f"warm_start={Path(args.warm_start).resolve()}")
    local_ray(num_cpus=2)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        res = run(args.dataset, Path(args.keep).resolve(), args.seed, args.hours, sets,
                  args.answer_steps)
    else:
        with tempfile.TemporaryDirectory(prefix="quality-") as work:
            res = run(args.dataset, Path(work), args.seed, args.hours, sets,
                      args.answer_steps)
    save(Path(args.out), args.entry or args.dataset, res)


def machine() -> dict:
    """Where it ran: conv trainers reproduce bit for bit only on one CPU instruction set
    (docs/trainers.md), so a result names the one its kernels used."""
    import platform

    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__}


def save(path: Path, entry: str, res: dict) -> None:
    """`res` as `entry` of the results file at `path` (others kept)."""
    import fcntl

    res["load_average"] = os.getloadavg()
    res["machine"] = machine()
    # Runs writing one file may end together: each reads, merges and writes under a lock on
    # the folder, which exists before the file does.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        merged = json.loads(path.read_text()) if path.is_file() else {}
        merged[entry] = res
        path.write_text(json.dumps(merged, indent=1))
    finally:
        os.close(folder)  # releases the lock
    print(json.dumps({k: v for k, v in res.items() if k != "fresh_runs"}, indent=1))


if __name__ == "__main__":
    main()
