"""`gansweep rerun SWEEP_DIR --top K --seeds S`: the sweep's top K configurations trained again
under S new seeds, as a small sweep of its own in SWEEP_DIR-rerun on the same cluster, so the
report can rank them by mean and spread rather than by one lucky seed.

The rerun is a Ray Tune grid over (configuration, seed) with the sweep's own trainable and
trial store: each trial's config carries its seed and which configuration it trains (the
reserved keys of jobs/trial.py), and the hyperparameters are resolved from that index, so
every trial has the flat configuration a sweep trial has, its own store key (the key includes
the seed), and resumes from its own checkpoint after an interruption. No Optuna study:
nothing is searched. ASHA is off (every seed runs its full length); collapse and divergence
still stop a run, since they are part of how a configuration behaves.
"""
from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

from gansweep.analysis.layout import rerun_dir, sweep_path, write_meta
from gansweep.analysis.records import DriverRun, Rerun, SweepMeta
from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.provenance import driver_versions
from gansweep.jobs.ray_address import check_reachable
from gansweep.jobs.resources import check_gpus
from gansweep.jobs.trial import RERUN_INDEX, SEED
from gansweep.trainers.data import dataset_label
from gansweep.trainers.errors import ConfigError


def top_configs(root: Path, k: int) -> list[dict]:
    """The sweep's best K configurations by its seed-robust ranking of the metric as measured
    (never the penalised objective, never a stopped run), as stored in the trial store. A
    two-objective sweep's: its Pareto front in knee order, then the next fronts likewise
    (analysis/ranking.py pareto_order)."""
    from gansweep.analysis.sweeps import load_sweep

    sweep = load_sweep(root)
    picks = []
    for r in sweep.ranked_configurations().head(k).to_dict("records"):
        picks.append({"key": r["key"], "rank": int(r["rank"]), "value": float(r["value"]),
                      "seeds": int(r["seeds"]), "state": r["state"],
                      "config": sweep.configs[r["key"]]})
    return picks


def fresh_seeds(spec, n: int) -> list[int]:
    """Seeds the sweep never trained with (it used seed, seed + 1, ... for its races)."""
    first = spec.seed + spec.seeds["count"]
    return [first + i for i in range(n)]


class _FromIndex:
    """Hyperparameter `name` of the configuration this trial's control settings point at (a
    class, not a lambda, so the experiment state pickles by reference)."""

    def __init__(self, configs: list[dict], name: str):
        self.configs, self.name = configs, name

    def __call__(self, spec) -> object:
        return self.configs[spec.config[RERUN_INDEX]][self.name]


def param_space(configs: list[dict], seeds: list[int]) -> dict:
    """A grid over (configuration index, seed): K x S trials with flat configurations."""
    from ray import tune

    names = sorted({n for c in configs for n in c})
    missing = [n for n in names if any(n not in c for c in configs)]
    if missing:  # one trainer, one resolved schema: cannot happen unless files were edited
        raise ConfigError(f"the top configurations disagree on {', '.join(missing)}; "
                          "their config.json files were edited")
    return {RERUN_INDEX: tune.grid_search(list(range(len(configs)))),
            SEED: tune.grid_search(list(seeds)),
            **{n: tune.sample_from(_FromIndex(configs, n)) for n in names}}


def rerun(sweep_dir: str | Path, top: int, seeds: int, address: str | None = None,
          resume: bool = False, log=print) -> Path:
    root = sweep_path(sweep_dir)
    spec, meta = sd.open_existing(root)
    if meta.rerun is not None:
        raise ConfigError(f"{root} is itself a seed rerun (of {meta.rerun.of}); rerun the "
                          "original sweep")
    if top < 1 or seeds < 1:
        raise ConfigError(f"--top {top} --seeds {seeds}: give whole numbers >= 1")
    check_reachable(address)
    check_gpus(spec.resources, address, log, spec.py_modules)
    target = rerun_dir(root)
    if target.exists() and any(target.iterdir()):
        if not resume:
            raise ConfigError(
                f"{target} already exists: report it with `gansweep report {root} --out DIR` "
                f"(the rerun is picked up), continue an interrupted one with `gansweep rerun "
                f"{root} --top {top} --seeds {seeds} --resume`, or move it away to rerun "
                "with other settings")
        rspec, rmeta, held = sd.lock(target, "gansweep rerun --resume", log=log)
        record = rmeta.rerun or Rerun()
        if record.top != top or len(record.seeds) != seeds:
            held.release()
            raise ConfigError(f"{target} is a rerun of the top {record.top} under "
                              f"{len(record.seeds)} seeds; resume it with those numbers")
        picks, new_seeds = record.configs, record.seeds
    else:
        if resume:
            raise ConfigError(f"no rerun to resume at {target}; drop --resume to start one")
        picks = top_configs(root, top)
        if not picks:
            raise ConfigError(f"no configuration of {root} has ended with a finite "
                              f"{spec.metric} yet; rerun it once some have (`gansweep status "
                              f"{root}`)")
        if len(picks) < top:
            log(f"[gansweep] only {len(picks)} configuration(s) have ended with a finite "
                f"{spec.metric}: rerunning those")
        new_seeds = fresh_seeds(spec, seeds)
        rspec = dataclasses.replace(
            spec, name=target.name, storage=str(root.parent.resolve()),
            trials=len(picks) * seeds, early_stop={**spec.early_stop, "asha": None},
            seeds={"count": 1, "top": 1, "statistic": spec.seeds["statistic"]},
            budget={"steps": None, "hours": None})
        from gansweep.jobs.submit import check_data

        check_data(rspec)
        rmeta, held = sd.create(rspec, log)
        rmeta.rerun = Rerun(of=str(root.resolve()), top=top, seeds=new_seeds, configs=picks)
        write_meta(target, rmeta)
    try:
        _run(rspec, target, rmeta, [p["config"] for p in picks], new_seeds, address, log)
    finally:
        held.release()
    log(f"[gansweep] rerun done: {target}. Report: gansweep report {root} --out REPORT_DIR")
    return target


def _run(spec, target: Path, meta: SweepMeta, configs: list[dict], seeds: list[int],
         address: str | None, log) -> None:
    from ray import tune

    from gansweep.analysis import layout
    from gansweep.jobs.outcomes import RecordOutcomes
    from gansweep.jobs.progress import Progress, RunClock, Summarize
    from gansweep.jobs.stopping import FlagStopper
    from gansweep.jobs.submit import control, init_ray, trial_dirname
    from gansweep.jobs.trial import tune_trainable

    run_id = uuid.uuid4().hex[:12]
    name = f"rerun-{len(meta.runs) + 1:03d}"
    meta.runs.append(DriverRun(run_id=run_id, started=time.time(), name=name,
                               versions=driver_versions()))
    write_meta(target, meta)
    init_ray(address, log, spec.py_modules)
    total = len(configs) * len(seeds)
    log(f"[gansweep] rerun {target.name}: {len(configs)} configurations x seeds "
        f"{', '.join(map(str, seeds))} = {total} trials of {spec.trainer} on "
        f"{dataset_label(spec.dataset)}")
    ctl = control(spec, target, run_id)
    from gansweep.jobs import tracking

    track = tracking.for_sweep(spec, target, meta, log)  # the sweep's trackers, if any
    tuner = tune.Tuner(
        tune_trainable(ctl, spec.resources),
        param_space=param_space(configs, seeds),
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=spec.max_concurrent,
                                    reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(
            name=name, storage_path=str(target / layout.TUNE), stop=FlagStopper(),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=[Progress(spec.metric, spec.mode, log=log), RecordOutcomes(ctl),
                       Summarize(target, ctl), RunClock(target, meta),
                       *track.callbacks(ctl)],
            verbose=0))
    try:
        tuner.fit()
    finally:
        track.finish()
