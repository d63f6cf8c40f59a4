"""Best found for compute spent: five ways to spend the same step budget, on paired seeds.

Each arm is the same seeded sweep through the real submit path (`jobs.submit.submit`), of the
MLP GAN on ring8 or grid25 over a wide space (both learning rates over four decades, as a user
who does not know them yet would write it), with a budget of 20 full runs' training steps and
no cap on configurations:

    random            random search, no stopping
    tpe               TPE, no stopping
    tpe+asha          TPE with Ray Tune's ASHA alone (what a Ray Tune user does today)
    tpe+collapse      TPE with gansweep's collapse stopping
    tpe+collapse+asha both

The incumbent after each run is the best *completed* run so far by the sweep's own score
(mixture_score on 2500 samples); the curve plots that incumbent's final model rescored on
20 000 fresh samples (another latent seed), so it measures the model, not the noise of the
score that picked it. Per arm and seed: the final incumbent at the full budget, the area under
the best-so-far curve (mean over the budget), and the budget it needed to come within 0.02 of
the no-stopping TPE arm's final incumbent on the same seed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/budget.py --dataset ring8
    (the collapse setting is chosen on development seeds first, from two candidates, by the
    mean area under the curve of the tpe+collapse arm, and on grid25 ASHA's grace likewise by
    the tpe+asha arm's; then held-out seeds 100-111 (grid25: 101-112) run every arm with them)

Writes benchmarks/results/budget.json (one entry per dataset, merged with what is there),
after every held-out seed. A run cut short continues on the seeds left, with the settings
chosen before, and is merged in, as often as it writes (seeds merged before are kept; files of
other settings are refused):

    ... budget.py --dataset grid25 --seeds 105-112 --dev '' --asha-grace 0.3 --out F
    ... budget.py --dataset grid25 --merge F
    ... budget.py --dataset grid25 --retrain 2   # the final configurations trained again

The sweeps live in a temporary directory, or in `--work DIR`, which it prints at its start
and which a kill leaves behind. The same command again with `--work DIR` continues from there:
each arm whose sweep is in DIR is resumed by gansweep's own `resume` (nothing lost, nothing
trained twice; a finished one only rescored), and its wall time is that of all its drivers.
An arm whose sweep in DIR was made with other settings is refused.

Another collapse setting beside the chosen one (its arms only, paired with the TPE arm already
in the results):

    ... budget.py --dataset ring8 --dev '' --collapse trend \
            --arms tpe+collapse,tpe+collapse+asha --out F
    ... budget.py --dataset ring8 --add F
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

RESULTS = Path(__file__).parent / "results"
RUNS = 20  # the budget, in full runs' steps
FRESH_N, FRESH_SEED = 20_000, 777
TOLERANCE = 0.02
STARTUP = 10  # runs: Optuna TPESampler's n_startup_trials, drawn at random before its model
SPACE = {"lr_g": {"low": 1e-5, "high": 1e-1, "log": True},
         "lr_d": {"low": 1e-5, "high": 1e-1, "log": True}}
# Short runs (the budget is 20 of them, over 12+ seeds, 5 arms and 2 datasets on 2 cores),
# sampled from an average of G's weights (ema 0.99 suits runs this short: README,
# "Stabilisers on the mixtures"). grid25 cannot be that short: at 2000 steps every arm's best
# scored <= 0.04 on held-out seed 100 (a benchmark of noise), and stabilisers_probe.json's
# grid25 runs (rates 1e-3, width 128) score 0.01-0.05 at 4000 steps, 0.27-0.54 at 10 000.
# `dev`: the development seeds; `collapse`: the CANDIDATES and `asha_graces` the shares of a
# run for ASHA's grace, each chosen on them when there is more than one. grid25 runs cost 7x
# ring8's, so it keeps the collapse setting chosen on ring8's development seeds (the spec's
# default) and chooses only ASHA's grace: on grid25 seed 100 (run before the choice, so not
# among grid25's held-out seeds) a tenth cut by noise, every run scoring ~0.01 there.
DATASETS = {
    "ring8": {"steps": 1500, "report_every": 100, "fixed": {"width": 64, "ema": 0.99},
              "dev": "0-3", "held_out": "100-111", "collapse": ["cautious", "eager"],
              "asha_graces": [0.1]},
    "grid25": {"steps": 10000, "report_every": 500, "fixed": {"width": 128, "ema": 0.999},
               "dev": "0-1", "held_out": "101-112", "collapse": ["cautious"],
               "asha_graces": [0.1, 0.3]},
}
# The collapse rule's base (grace: a quarter of a run unless a candidate's `grace` gives another
# share); threshold and patience are chosen per dataset on development seeds from CANDIDATES
# (`choose`).
COLLAPSE = {"threshold": 0.25, "patience": 3}
ASHA = {"reduction_factor": 3}  # grace: a share of a run, DATASETS[...]["asha_graces"]
ARMS = {
    "random": {"sampler": "random", "early_stop": {"collapse": False}},
    "tpe": {"sampler": "tpe", "early_stop": {"collapse": False}},
    "tpe+asha": {"sampler": "tpe", "early_stop": {"collapse": False, "asha": "ASHA"}},
    "tpe+collapse": {"sampler": "tpe", "early_stop": {"collapse": "COLLAPSE"}},
    "tpe+collapse+asha": {"sampler": "tpe",
                          "early_stop": {"collapse": "COLLAPSE", "asha": "ASHA"}},
    # Not among the default arms: the penalty question, run with --arms
    # tpe+collapse,tpe+collapse-measured (--out a file of its own).
    "tpe+collapse-measured": {"sampler": "tpe",
                              "early_stop": {"collapse": "COLLAPSE", "penalty": False}},
}
DEFAULT_ARMS = ["random", "tpe", "tpe+asha", "tpe+collapse", "tpe+collapse+asha"]


def spec_for(dataset: str, arm: str, seed: int, storage: str, steps: int | None = None,
             runs: int = RUNS, collapse: dict | None = None, asha_grace: float = 0.1) -> dict:
    d = DATASETS[dataset]
    steps = steps or d["steps"]
    every = max(1, d["report_every"] * steps // d["steps"])
    early = {}
    for k, v in ARMS[arm]["early_stop"].items():
        if v == "COLLAPSE":
            v = {**COLLAPSE, **(collapse or {})}
            v["grace_steps"] = int(steps * v.pop("grace", 0.25))
        elif v == "ASHA":
            v = {**ASHA, "grace_steps": max(every, round(steps * asha_grace))}
        early[k] = v
    return {"name": f"{dataset}-{arm}-{seed}", "trainer": "gan", "dataset": dataset,
            "steps": steps, "report_every": every, "metric": "mixture_score", "seed": seed,
            "space": SPACE, "fixed": d["fixed"], "early_stop": early, "seeds": 1,
            "sampler": ARMS[arm]["sampler"], "budget": {"steps": runs * steps},
            "max_concurrent": 2, "storage": storage}


def rescore(root: Path, key: str, dataset) -> float:
    """A run's final model on FRESH_N samples of another latent seed."""
    from gansweep.analysis.layout import STATE, TrialStore
    from gansweep.trainers.registry import build

    store = TrialStore.of(root)
    record = store.read_json(key, "config.json")
    trainer = build(record["trainer"], record["dataset"], record["config"], record["seed"],
                    device="cpu", steps=record["steps"])
    trainer.load_state_dict(store.read_torch(key, STATE)["trainer"])
    return fresh_score(trainer, dataset)


def fresh_score(trainer, dataset) -> float:
    import torch

    from gansweep.analysis.metrics.modes import mode_scores

    with torch.no_grad():
        x = trainer.sample(FRESH_N, seed=FRESH_SEED).numpy()
    if not np.isfinite(x).all():
        return 0.0
    return mode_scores(x, dataset.modes, dataset.mode_std)["mixture_score"]


def retrain_one(job: tuple[str, dict, int, int]) -> float:
    """A configuration trained again from scratch on a training seed no sweep used, scored
    as the incumbents are (the yardstick: settings that train well again, not a lucky run)."""
    import torch

    from gansweep.trainers.data import load_dataset
    from gansweep.trainers.registry import build

    torch.set_num_threads(1)
    dataset, config, seed, steps = job
    trainer = build("gan", dataset, config, seed, device="cpu", steps=steps)
    trainer.train(steps)
    return fresh_score(trainer, load_dataset(dataset))


def retrain(res: dict, k: int, workers: int = 2, log=print) -> dict:
    """Each arm's final incumbent configuration trained again on training seeds 1..k (the
    sweeps trained every run on seed 0); a configuration two arms share is trained once, and
    rows trained again before on as many seeds keep their scores (a merge adds seeds only).
    Adds `retrained` (the k scores) to each arm's row and the summary's `retrained_mean`."""
    from concurrent.futures import ProcessPoolExecutor

    rows = [c for row in res["per_seed"].values() for c in row.values()
            if c.get("incumbent_config") is not None and len(c.get("retrained", [])) != k]
    jobs = sorted({(res["dataset"], json.dumps(c["incumbent_config"], sort_keys=True), s)
                   for c in rows for s in range(1, k + 1)})
    with ProcessPoolExecutor(workers) as pool:
        scores = dict(zip(jobs, pool.map(retrain_one, [
            (d, json.loads(cfg), s, res["run_steps"]) for d, cfg, s in jobs])))
    for c in rows:
        cfg = json.dumps(c["incumbent_config"], sort_keys=True)
        c["retrained"] = [scores[(res["dataset"], cfg, s)] for s in range(1, k + 1)]
    log(f"retrained {len(jobs)} (configuration, seed) pairs")
    res["summary"] = summarise(res)
    return res


def curve(root: Path, dataset) -> dict:
    """Best-so-far: after each run (in the order runs ended; a revived run's pause and end
    apart), budget spent and the current incumbent's fresh score."""
    from gansweep.analysis.sweeps import budget_events, load_sweep

    s = load_sweep(root)
    t = s.trials[s.trials["state"] != "unfinished"]
    counts = {str(k): int(n) for k, n in t["state"].value_counts().items()}
    revived = int(np.isfinite(t["revived_from_step"].astype(float)).sum()) if len(t) else 0
    if revived:
        counts["revived"] = revived
    best_key, best_v, fresh, config = None, -math.inf, {}, None
    steps, values = [], []
    spent = 0.0
    for r in budget_events(s.trials).to_dict("records"):
        spent += float(r["steps"])
        v = float(r["value"])
        if r["state"] == "completed" and math.isfinite(v) and v > best_v:
            best_key, best_v = r["key"], v
            fresh[best_key] = rescore(root, best_key, dataset)
            config = s.configs.get(best_key)
        steps.append(spent)
        values.append(fresh.get(best_key, 0.0))
    return {"steps": steps, "fresh": values, "runs": len(t), "counts": counts,
            "configurations": int(t["config_key"].nunique()),
            "incumbent": best_key, "incumbent_sweep_score": best_v if best_key else None,
            "incumbent_config": config}


def at(c: dict, budget: float) -> float:
    """The incumbent's fresh score once `budget` steps were spent (0 before any)."""
    out = 0.0
    for s, v in zip(c["steps"], c["fresh"]):
        if s > budget + 1e-9:
            break
        out = v
    return out


def auc(c: dict, budget: float) -> float:
    """Mean over the budget of the best-so-far step function."""
    xs = [0.0] + [min(s, budget) for s in c["steps"]] + [budget]
    ys = [0.0] + c["fresh"]
    return float(sum((xs[i + 1] - xs[i]) * ys[i] for i in range(len(ys))) / budget)


def reach(c: dict, target: float) -> float | None:
    for s, v in zip(c["steps"], c["fresh"]):
        if v >= target:
            return s
    return None


def sweep(spec) -> tuple[Path, float, bool]:
    """The arm's sweep through the real submit path; one that an interrupted run of this
    benchmark left in its work directory is resumed instead. Returns its directory, the
    wall-clock of its drivers and whether it was resumed."""
    from gansweep.analysis.layout import read_meta
    from gansweep.jobs import sweep_dir as sd
    from gansweep.jobs.submit import resume, submit

    quiet = lambda *_: None  # noqa: E731
    root = Path(spec.sweep_dir)
    if not (root / sd.META).is_file():
        t0 = time.perf_counter()
        return submit(spec, log=quiet), time.perf_counter() - t0, False
    made, _ = sd.open_existing(root)
    if made.fingerprint() != spec.fingerprint():
        raise SystemExit(f"{root} holds this arm's sweep made with other settings (steps, "
                         "collapse, ASHA grace): give another --work, or the same settings")
    resume(root, log=quiet)
    return root, read_meta(root).spent_seconds(), True


def run(dataset: str, seeds: list[int], arms: list[str], work: Path, steps: int | None = None,
        runs: int = RUNS, collapse: dict | None = None, asha_grace: float = 0.1, log=print,
        on_seed=None) -> dict:
    from gansweep.jobs.spec import parse_spec
    from gansweep.trainers.data import load_dataset

    data = load_dataset(dataset)
    full = steps or DATASETS[dataset]["steps"]
    budget = runs * full
    out: dict = {"dataset": dataset, "budget_steps": budget, "run_steps": full,
                 "arms": arms, "seeds": seeds, "per_seed": {}}
    for seed in seeds:
        row = {}
        for arm in arms:
            spec = parse_spec(spec_for(dataset, arm, seed, str(work), steps, runs, collapse,
                                       asha_grace))
            root, wall_s, resumed = sweep(spec)
            c = curve(root, data)
            c["wall_s"] = round(wall_s, 1)
            if resumed:
                c["resumed"] = True
            c["final"], c["auc"] = at(c, budget), auc(c, budget)
            row[arm] = c
            log(f"{dataset} seed {seed} {arm}: final {c['final']:.3f}, auc {c['auc']:.3f}, "
                f"{c['runs']} runs {c['counts']}, {c['wall_s']} s")
        target = row["tpe"]["final"] - TOLERANCE if "tpe" in row else None
        for c in row.values():
            c["reach_tpe_final"] = None if target is None else reach(c, target)
        out["per_seed"][str(seed)] = row
        if on_seed:  # hours of runs: what is done is written as it is done
            on_seed({**out, "summary": summarise(out)})
    out["summary"] = summarise(out)
    return out


def found_at(c: dict) -> float:
    """Budget spent when the arm's final incumbent ended (its curve's first step at its final
    value)."""
    return next(s for s, v in zip(c["steps"], c["fresh"]) if v == c["fresh"][-1])


def summarise(out: dict) -> dict:
    budget = out["budget_steps"]
    summary = {}
    for arm in out["arms"]:
        rows = [r[arm] for r in out["per_seed"].values() if arm in r]
        finals = [c["final"] for c in rows]
        reaches = [c["reach_tpe_final"] for c in rows]
        got = [x for x in reaches if x is not None]
        summary[arm] = {
            "final_mean": float(np.mean(finals)), "final_std": float(np.std(finals, ddof=1))
            if len(finals) > 1 else None, "final_min": min(finals), "final_max": max(finals),
            "auc_mean": float(np.mean([c["auc"] for c in rows])),
            "reached_tpe_final": f"{len(got)} of {len(rows)}",
            # a seed that never reached the target counts as needing more than the budget
            "median_budget_to_reach": float(np.median([x if x is not None else math.inf
                                                       for x in reaches]) / budget),
            "median_budget_to_reach_ci90": median_interval(
                [x / budget if x is not None else math.inf for x in reaches]),
            "configurations_mean": float(np.mean([c["configurations"] for c in rows])),
            "stopped_mean": float(np.mean([sum(v for k, v in c["counts"].items()
                                               if k not in ("completed", "revived"))
                                           for c in rows])),
            "wall_s_mean": float(np.mean([c["wall_s"] for c in rows])),
            # where the budget went: by the end of TPE's random start-up, and by the time the
            # arm's final incumbent had ended
            "startup_share_median": float(np.median([c["steps"][min(STARTUP, len(c["steps"]))
                                                               - 1] for c in rows]) / budget),
            "incumbent_found_median": float(np.median([found_at(c) for c in rows]) / budget)}
        summary[arm].update(paired(out, arm))
        again = [float(np.mean(c["retrained"])) for c in rows if "retrained" in c]
        if again:  # per seed: the mean over its retrainings; then over the seeds
            summary[arm].update(retrained_mean=float(np.mean(again)), retrained_std=float(
                np.std(again, ddof=1)) if len(again) > 1 else None, retrained_seeds=len(again))
    return summary


def median_interval(xs: list[float]) -> list[float] | None:
    """A 90 % bootstrap interval (10 000 resamples of the seeds) for the median of `xs`,
    where inf is a seed that never got there: what the half-budget target, a median over a
    dozen seeds, can tell apart. Quantiles are resampled medians themselves, not
    interpolated, so an end may be inf."""
    if len(xs) < 2:
        return None
    boot = np.median(np.random.default_rng(0).choice(np.array(xs), size=(10_000, len(xs))),
                     axis=1)
    return [float(np.quantile(boot, q, method="inverted_cdf")) for q in (0.05, 0.95)]


def paired(out: dict, arm: str, base: str = "tpe") -> dict:
    """The arm against no-stopping TPE on the same seeds: the mean of the per-seed differences
    of the final best, a 90 % bootstrap interval for it (10 000 resamples of the seeds), and
    the seeds it won, tied (within 0.005) and lost. A mean can ride on a few seeds; this says
    whether it does."""
    pairs = [(r[arm]["final"], r[base]["final"]) for r in out["per_seed"].values()
             if arm in r and base in r]
    if arm == base or len(pairs) < 2:
        return {}
    d = np.array([a - b for a, b in pairs])
    boot = np.random.default_rng(0).choice(d, size=(10_000, len(d))).mean(axis=1)
    return {"vs_tpe": {"mean_diff": float(d.mean()),
                       "ci90": [float(np.quantile(boot, 0.05)), float(np.quantile(boot, 0.95))],
                       "wins": int((d > 0.005).sum()), "ties": int((abs(d) <= 0.005).sum()),
                       "losses": int((d < -0.005).sum())}}


def targets(summary: dict) -> dict:
    """The issue's three targets, judged on one dataset's summary."""
    out = {}
    tpe = summary.get("tpe")
    for arm, s in summary.items():
        if not (arm.startswith("tpe+collapse") and "measured" not in arm and tpe):
            continue
        asha = summary.get("tpe+asha")
        out[arm] = {
            "half_budget_on_median_seed": s["median_budget_to_reach"] <= 0.5,
            "mean_final_no_worse_than_tpe": s["final_mean"] >= tpe["final_mean"] - 1e-9,
            "beats_asha_alone": bool(asha) and (
                s["final_mean"] > asha["final_mean"] + TOLERANCE / 2
                or (abs(s["final_mean"] - asha["final_mean"]) <= TOLERANCE / 2
                    and s["median_budget_to_reach"] < asha["median_budget_to_reach"]))}
    if tpe and "random" in summary:
        out["tpe_beats_random"] = tpe["final_mean"] > summary["random"]["final_mean"]
    return out


def _share(x: float) -> str:
    return "over" if math.isinf(x) else f"{x:.2f}"


def table(res: dict) -> str:
    """The README's table for one dataset's entry."""
    again = any("retrained_mean" in s for s in res["summary"].values())
    rows = ["| arm | final best, mean ± sd (min-max) | against TPE, same seeds: mean difference "
            "[90 % interval], won/tied/lost | area under the curve | budget to reach "
            "TPE's final − 0.02, median seed [90 % interval] | reached | configurations | "
            "stopped runs | minutes a sweep, mean |"
            + (" final configuration trained again, mean ± sd |" if again else ""),
            "|---|---|---|---|---|---|---|---|---|" + ("---|" if again else "")]
    for arm, s in res["summary"].items():
        sd = f" ± {s['final_std']:.3f}" if s["final_std"] is not None else ""
        need = s["median_budget_to_reach"]
        v = s.get("vs_tpe")
        vs = (f"{v['mean_diff']:+.3f} [{v['ci90'][0]:+.3f}, {v['ci90'][1]:+.3f}], "
              f"{v['wins']}/{v['ties']}/{v['losses']}" if v else "-")
        ci = s.get("median_budget_to_reach_ci90")
        reach = ("over the budget" if math.isinf(need) else f"{need:.2f}",
                 s["reached_tpe_final"]) if "tpe" in res["summary"] else ("-", "-")
        if ci and "tpe" in res["summary"]:
            reach = (f"{reach[0]} [{_share(ci[0])}, {_share(ci[1])}]", reach[1])
        rows.append(
            f"| {arm} | {s['final_mean']:.3f}{sd} ({s['final_min']:.3f}-{s['final_max']:.3f}) "
            f"| {vs} | {s['auc_mean']:.3f} | {reach[0]} | {reach[1]} "
            f"| {s['configurations_mean']:.1f} | {s['stopped_mean']:.1f} "
            f"| {s['wall_s_mean'] / 60:.1f} |")
        if again:
            rsd = s.get("retrained_std")
            rows[-1] += (f" {s['retrained_mean']:.3f}{f' ± {rsd:.3f}' if rsd else ''} |"
                         if "retrained_mean" in s else " - |")
    return "\n".join(rows)


def plot(res: dict, path: Path) -> Path:
    """Mean best-so-far over the seeds, per arm, against the share of the budget spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = res["budget_steps"]
    grid = np.linspace(0, budget, 101)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for arm in res["arms"]:
        curves = [r[arm] for r in res["per_seed"].values() if arm in r]
        ys = np.array([[at(c, b) for b in grid] for c in curves])
        ax.plot(grid / budget, ys.mean(axis=0), lw=1.8, label=f"{arm} ({len(curves)} seeds)")
    ax.set_xlabel("share of the budget spent (training steps)")
    ax.set_ylabel("incumbent's mixture_score\n(20 000 fresh samples, mean over seeds)")
    ax.set_title(f"{res['dataset']}: best completed run so far, budget {RUNS} runs")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def parse_seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if b else [int(a)]
    return out


CANDIDATES = {"cautious": {"threshold": 0.25, "patience": 3},  # the spec's default
              "eager": {"threshold": 0.5, "patience": 2},
              # tried after both missed the half-budget target on ring8 (--collapse trend)
              "trend": {"threshold": 0.25, "patience": 3, "trend": True},
              # ... and after trend lost on ring8's development seeds (--collapse revive)
              "revive": {"threshold": 0.25, "patience": 3, "revive": True},
              # ... and after grid25's seed 107, where the cautious rule stopped at step 4000 a
              # run whose mode diversity dipped and recovered: half a run's grace
              # (--collapse patient; it lost to cautious on grid25's development seeds, area
              # 0.097 against 0.121, so it ran on no held-out seed)
              "patient": {"threshold": 0.25, "patience": 3, "grace": 0.5}}
# What tells two collapse settings apart (a results file's `collapse` record against another's
# or a candidate's).
SETTING_KEYS = ("threshold", "patience", "grace", "trend", "revive")


def choose(dataset: str, dev: list[int], work: Path, log=print, steps: int | None = None,
           runs: int = RUNS) -> tuple[str, float, dict]:
    """The settings for the held-out seeds, chosen on the development seeds alone where the
    dataset lists several candidates, each by the higher mean area under the best-so-far
    curve: the collapse setting by the tpe+collapse arm (ties: the cautious one), ASHA's grace
    by the tpe+asha arm (ties: the shorter)."""
    names = DATASETS[dataset]["collapse"]
    best = names[0]
    record = {"candidates": {n: CANDIDATES[n] for n in names}, "chosen": best}
    if len(names) > 1:
        results = {n: run(dataset, dev, ["tpe+collapse"], work / n, steps, runs,
                          collapse=CANDIDATES[n], log=log) for n in names}
        scores = {n: r["summary"]["tpe+collapse"]["auc_mean"] for n, r in results.items()}
        best = max(scores, key=lambda k: (scores[k], k == "cautious"))
        record.update(auc_mean=scores, chosen=best, per_candidate=results)
    graces = DATASETS[dataset]["asha_graces"]
    grace = graces[0]
    if len(graces) > 1:
        by = {g: run(dataset, dev, ["tpe+asha"], work / f"asha-{g}", steps, runs,
                     asha_grace=g, log=log) for g in graces}
        auc_by = {str(g): r["summary"]["tpe+asha"]["auc_mean"] for g, r in by.items()}
        grace = max(graces, key=lambda g: (auc_by[str(g)], -g))
        record["asha"] = {"candidates": graces, "auc_mean": auc_by, "chosen": grace,
                          "per_candidate": {str(g): r for g, r in by.items()}}
    return best, grace, record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=list(DATASETS), required=True)
    p.add_argument("--seeds", default=None, help="held-out sampler seeds (default: the "
                   "dataset's, DATASETS)")
    p.add_argument("--dev", default=None, help="development seeds the settings are chosen on "
                   "first (default: the dataset's; '' to take the first candidates unchosen)")
    p.add_argument("--asha-grace", type=float, default=None, help="with --dev '': ASHA's "
                   "grace as a share of a run (default: the dataset's first candidate)")
    p.add_argument("--collapse", choices=list(CANDIDATES), default=None, help="with --dev '': "
                   "the collapse setting (default: the dataset's first candidate)")
    p.add_argument("--add", default=None, metavar="F", help="add the collapse arms of results "
                   "file F (another collapse setting, --collapse) to --out as 'ARM [SETTING]', "
                   "judged against --out's TPE arm on the same seeds")
    p.add_argument("--arms", default=",".join(DEFAULT_ARMS))
    p.add_argument("--out", default=str(RESULTS / "budget.json"))
    p.add_argument("--table", action="store_true", help="print the README table of --out")
    p.add_argument("--merge", default=None, help="add the held-out seeds of this results file "
                   "(a run continued on other seeds with the same collapse setting) to --out")
    p.add_argument("--retrain", type=int, default=0, metavar="K", help="train each arm's final "
                   "incumbent configuration in --out again on training seeds 1..K")
    p.add_argument("--work", default=None, metavar="DIR", help="keep the sweeps in DIR (kept "
                   "afterwards); a run of the same command cut short continues there")
    args = p.parse_args()
    d = DATASETS[args.dataset]
    args.seeds = d["held_out"] if args.seeds is None else args.seeds
    args.dev = d["dev"] if args.dev is None else args.dev
    if args.dev and (args.asha_grace or args.collapse):
        p.error("--asha-grace and --collapse fix what the development seeds would choose: "
                "give them with --dev ''")
    if args.merge:
        merge(Path(args.out), Path(args.merge), args.dataset)
        return
    if args.add:
        add_arms(Path(args.out), Path(args.add), args.dataset)
        return
    if args.retrain:
        path = Path(args.out)
        merged = json.loads(path.read_text())
        res = retrain(merged[args.dataset], args.retrain)
        res["retrain"] = {"seeds": list(range(1, args.retrain + 1)),
                          "command": " ".join(sys.argv)}
        path.write_text(json.dumps(merged, indent=1))
        print(table(res))
        return
    if args.table:
        res = json.loads(Path(args.out).read_text())[args.dataset]
        print(table(res), json.dumps(res["targets"], indent=1), sep="\n")
        return
    from gansweep.jobs.submit import local_ray

    local_ray(num_cpus=2)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = args.work or stack.enter_context(tempfile.TemporaryDirectory(prefix="budget-"))
        Path(work).mkdir(parents=True, exist_ok=True)
        print(f"sweeps in {work}: after a kill, the same command with --work {work} "
              "continues", flush=True)
        name, grace, chosen = (args.collapse or d["collapse"][0],
                               args.asha_grace or d["asha_graces"][0], None)
        if args.dev:
            name, grace, chosen = choose(args.dataset, parse_seeds(args.dev),
                                         Path(work) / "dev")
            print(f"chosen on seeds {args.dev}: collapse {name} {chosen.get('auc_mean')}, "
                  f"ASHA grace {grace} {chosen.get('asha', {}).get('auc_mean')}", flush=True)
        held = parse_seeds(args.seeds)
        res = run(args.dataset, held, args.arms.split(","), Path(work) / "held-out",
                  collapse=CANDIDATES[name], asha_grace=grace,
                  on_seed=lambda r: write(r, args, name, grace, chosen, t0, partial=True))
    write(res, args, name, grace, chosen, t0)
    print(json.dumps({"summary": res["summary"], "targets": res["targets"]}, indent=1))


def merge(into: Path, other: Path, dataset: str) -> None:
    """One dataset's held-out seeds from two runs of the same arms and collapse setting."""
    merged = json.loads(into.read_text())
    a, b = merged[dataset], json.loads(other.read_text())[dataset]
    if a["arms"] != b["arms"] or [a["collapse"].get(k) for k in SETTING_KEYS] != \
            [b["collapse"].get(k) for k in SETTING_KEYS] or asha_grace(a) != asha_grace(b):
        raise SystemExit("the two runs differ in their arms, collapse setting or ASHA grace")
    new = {s: row for s, row in b["per_seed"].items() if s not in a["per_seed"]}
    a["per_seed"].update(new)  # a seed merged before keeps its rows (retrained ones too)
    a["seeds"] = sorted(int(k) for k in a["per_seed"])
    a["partial"] = b["partial"]  # the continuation ran the seeds that were left
    a["wall_s"] = round(a["wall_s"] + sum(c["wall_s"] for row in new.values()
                                          for c in row.values()), 1)
    rejudge(merged, dataset, into)


def rejudge(merged: dict, dataset: str, into: Path) -> None:
    """After seeds or arms were added: the entry's summary, targets and plot again."""
    a = merged[dataset]
    a["summary"] = summarise(a)
    a["targets"] = targets(a["summary"])
    a["plot"] = str(plot(a, into.with_name(f"{into.stem}_{dataset}.png")).name)
    into.write_text(json.dumps(merged, indent=1))


CANDIDATE_KEYS = ("dataset", "budget_steps", "run_steps", "arms", "seeds", "per_seed", "summary",
                  "collapse")  # what a development record keeps of a run (choose's, + setting)


def add_arms(into: Path, other: Path, dataset: str) -> None:
    """Another collapse setting's arms beside the entry's, on the seeds both ran: each is
    renamed 'ARM [SETTING]' and its reach judged against the entry's TPE arm of that seed
    (TPE without stopping does not depend on the collapse setting). A file of the development
    seeds joins the record of the choice made there instead."""
    merged = json.loads(into.read_text())
    a, b = merged[dataset], json.loads(other.read_text())[dataset]
    name = next((n for n, c in CANDIDATES.items()
                 if all(b["collapse"].get(k) == c.get(k) for k in SETTING_KEYS)), None)
    if name is None or asha_grace(a) != asha_grace(b) or a["run_steps"] != b["run_steps"]:
        raise SystemExit("F must be a run of budget.py with --collapse SETTING and the same "
                         "ASHA grace and run length as --out's entry")
    if set(b["per_seed"]) <= {str(s) for s in parse_seeds(DATASETS[dataset]["dev"])}:
        # development seeds: the setting joins the choice's record (the choice is not redone)
        dev = a.get("dev") or {}
        a["dev"] = dev
        dev.setdefault("candidates", {})[name] = CANDIDATES[name]
        dev.setdefault("auc_mean", {})[name] = summarise(b)["tpe+collapse"]["auc_mean"]
        dev.setdefault("per_candidate", {})[name] = {k: b[k] for k in CANDIDATE_KEYS if k in b}
        into.write_text(json.dumps(merged, indent=1))
        return
    added = [arm for arm in b["arms"] if arm.startswith("tpe+collapse")]
    labels = {arm: f"{arm} [{name}]" for arm in added}
    for seed, row in b["per_seed"].items():
        if seed not in a["per_seed"]:
            continue
        target = a["per_seed"][seed]["tpe"]["final"] - TOLERANCE
        for arm in added:
            c = dict(row[arm], reach_tpe_final=reach(row[arm], target))
            a["per_seed"][seed][labels[arm]] = c
    a["arms"] = [x for x in a["arms"] if x not in labels.values()] + list(labels.values())
    a.setdefault("added", {})[name] = {"collapse": b["collapse"], "arms": list(labels.values()),
                                       "seeds": sorted(int(s) for s in b["per_seed"]
                                                       if s in a["per_seed"])}
    rejudge(merged, dataset, into)


def asha_grace(res: dict) -> float:
    return res.get("asha", {}).get("grace", 0.1)  # entries from before the choice: a tenth


def write(res: dict, args, name: str, grace: float, chosen: dict | None, t0: float,
          partial: bool = False) -> None:
    """Merge one dataset's entry into the results; a partial one says how many seeds ran."""
    chosen_here = len(DATASETS[args.dataset]["collapse"]) > 1
    res["collapse"] = {**COLLAPSE, **CANDIDATES[name], "setting": name, "chosen_on_dev_seeds":
                       (args.dev or None) if chosen_here else f"ring8 {DATASETS['ring8']['dev']}"}
    several = len(DATASETS[args.dataset]["asha_graces"]) > 1
    res["asha"] = {**ASHA, "grace": grace,
                   "chosen_on_dev_seeds": (args.dev or None) if several else None}
    res["dev"] = chosen
    res["targets"] = targets(res["summary"])
    res["partial"] = partial
    if partial:  # the seeds that ran, and those the command was given
        res["seeds_planned"] = res["seeds"]
        res["seeds"] = sorted(int(k) for k in res["per_seed"])
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["load_average"] = os.getloadavg()
    path = Path(args.out)
    res["plot"] = str(plot(res, path.with_name(f"{path.stem}_{args.dataset}.png")).name)
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged[args.dataset] = res
    path.write_text(json.dumps(merged, indent=1))


if __name__ == "__main__":
    main()
