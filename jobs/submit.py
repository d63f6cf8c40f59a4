"""Submit or resume a sweep: Optuna chooses configurations, Ray Tune places the trials.

Nothing here runs before the spec, the data and the sweep directory have been checked.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from gansweep.analysis import layout
from gansweep.analysis.records import DriverRun, SweepMeta
from gansweep.jobs import sweep_dir as sd
from gansweep.jobs.early_stop import collapse_rule
from gansweep.jobs.provenance import driver_versions
from gansweep.jobs.ray_address import check_reachable, resolve
from gansweep.jobs.resources import check_gpus
from gansweep.jobs.spec import SweepSpec
from gansweep.jobs.trial import TrialControl
from gansweep.trainers.data import dataset_label
from gansweep.trainers.errors import ConfigError, Interrupted


def control(spec: SweepSpec, root: Path, run_id: str) -> TrialControl:
    """The sweep's settings every trial of this driver run needs; never hashed."""
    return TrialControl(
        trainer=spec.trainer, dataset=spec.dataset, seed=spec.seed, steps=spec.steps,
        report_every=spec.report_every, score_every=spec.score_every, metric=spec.metric,
        mode=spec.mode, store=str(root / layout.TRIALS),
        evaluators=str(root / layout.EVALUATORS), run_id=run_id,
        threads=max(1, int(spec.resources["cpu"])),
        collapse=collapse_rule(spec.early_stop, spec.trainer, spec.steps),
        penalize=spec.early_stop.get("penalty", True), features=spec.features,
        metric_2=spec.metric_2, mode_2=spec.modes[1] if spec.metric_2 else None,
        gpus=float(spec.resources["gpu"]), figures=bool(spec.tracking))


def check_data(spec: SweepSpec):
    """Load the dataset once in the driver, so a missing file or an offline-only source is
    reported before Ray starts, not in every trial. Returns it."""
    from gansweep.trainers.registry import build

    data = build(spec.trainer, spec.dataset, dict(spec.fixed), spec.seed, device="cpu",
                 steps=spec.steps).data
    if spec.features:  # the group's own network must take this data before any trial runs
        from gansweep.analysis import features

        features.check(spec.features, data)
    return data


def prepare_evaluator(data, root: Path, output: str, log=print) -> None:
    """Train the image evaluator once, in the sweep directory, before any trial starts; every
    trial on every node then loads that one copy instead of training its own. `output`: what
    the trainer's runs are scored on (a SOM's map needs no evaluator)."""
    from gansweep.analysis.evaluator import load_or_train, scores_through

    if not scores_through(output, data):
        return

    where = root / layout.EVALUATORS
    log(f"[gansweep] evaluator features for {data.name} ({'x'.join(map(str, data.shape))}) "
        f"in {where}")
    load_or_train(data, where)


def init_ray(address: str | None, log=print, py_modules: tuple = ()) -> None:
    """Join the cluster at `address` (or $RAY_ADDRESS), else start a local Ray. `py_modules`
    (a spec's own packages) go to every node through Ray's runtime environment: only those
    folders, not the driver's whole directory (`working_dir` would upload sweeps and data
    too, and move each worker's current directory)."""
    import ray

    address = resolve(address)
    _skip_callback_census()
    if ray.is_initialized():
        return
    env = {"py_modules": list(py_modules)} if py_modules else None
    if address:
        log(f"[gansweep] joining the Ray cluster at {address}")
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 runtime_env=env)
    else:
        log(f"[gansweep] starting a local Ray on this machine ({os.cpu_count()} CPUs)")
        local_ray(runtime_env=env)


def local_ray(**options) -> None:
    """Start a Ray of this process's own on this machine (`options`: `num_cpus`,
    `runtime_env`, ... as `ray.init` takes them). "local": without it ray.init() joins
    whatever cluster the last `ray start` here recorded, and a sweep would run on it while
    saying it started its own."""
    import ray

    lean_local_node()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, **options)


# What an embedded Ray's node starts with instead of Ray's defaults (RayParams), and why:
# - dashboard_agent_listen_port None (any free port): Ray binds its node agent's HTTP server to
#   52365. With another Ray on the machine (a second sweep, the group's own Ray, a notebook)
#   that port is taken: the agent retries for about 3.4 s, logs a traceback and goes on
#   without it, and the node is not ready until it gives up (ray.init 7.6 s against 5.2 s,
#   measured beside a running sweep). An embedded Ray serves nothing there, as `ray start
#   --dashboard-agent-listen-port=0` and Ray's own test clusters ask.
# - include_log_monitor False: the log monitor streams workers' output to drivers that ask
#   for it, and this one starts with log_to_driver=False (workers' output stays in the
#   session's log files); 0.5 s of CPU at every start, measured across the suite's Rays.
# The autoscaler monitor stays, though it has nothing to scale here (without it ray.shutdown
# took 0.4 s instead of 1.2 s): it is how jobs/resources.py tells a Ray that no autoscaler
# can add a GPU node to, and a Python session's second sweep joins the Ray its first started.
LEAN_NODE = {"dashboard_agent_listen_port": None, "include_log_monitor": False}


def lean_local_node() -> None:
    """Give the node an embedded Ray starts the defaults LEAN_NODE says. ray.init has no
    option for them: the defaults Ray's node parameters take are changed instead."""
    import inspect

    try:
        from ray._private.parameter import RayParams
    except ImportError:  # a Ray laid out otherwise: it keeps its own defaults
        return
    init = RayParams.__init__
    names = [p.name for p in inspect.signature(init).parameters.values()
             if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty]
    if set(LEAN_NODE) <= set(names) and len(names) == len(init.__defaults__):
        init.__defaults__ = tuple(LEAN_NODE.get(n, d) for n, d in zip(names, init.__defaults__))


def _skip_callback_census() -> None:
    """Ray Tune counts the callbacks a run is given for its usage statistics, and to name
    them it imports every integration it knows: mlflow, wandb, comet, aim. Where those are
    installed that is about 1 s of every driver's start (0.9-1.8 s measured here), spent
    importing trackers the sweep may not use. gansweep's callbacks are its own, so the
    census would only ever count "CustomCallback": it is skipped. Nothing else in Ray's usage
    statistics changes."""
    try:
        from ray.air._internal import usage
    except ImportError:  # a Ray without it has nothing to skip
        return
    if hasattr(usage, "tag_callbacks"):
        usage.tag_callbacks = lambda callbacks: False


def study_storage(root: Path):
    """The Optuna storage the sweep directory records (jobs/study.py)."""
    from gansweep.jobs import study

    return study.open_for(root)


def open_study(spec: SweepSpec, root: Path, study_name: str, sampler_seed: int):
    """The sweep's Optuna study (made on first use), with the spec's sampler."""
    import optuna

    from gansweep.jobs.samplers import make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if spec.metric_2 is not None:  # two objectives: Optuna's multi-objective study
        return _open_two(spec, root, study_name, sampler_seed)
    study = optuna.create_study(study_name=study_name, storage=study_storage(root),
                                sampler=make_sampler(spec.sampler, sampler_seed),
                                direction="minimize" if spec.mode == "min" else "maximize",
                                load_if_exists=True)
    if len(study.directions) != 1 or study.direction.name.lower()[:3] != spec.mode:
        raise ConfigError(f"optuna study {study_name} in {root} optimises in the other "
                          "direction; this directory was not made from this spec")
    return study


def _open_two(spec: SweepSpec, root: Path, study_name: str, sampler_seed: int):
    import optuna

    from gansweep.jobs.samplers import make_sampler

    directions = ["minimize" if m == "min" else "maximize" for m in spec.modes]
    study = optuna.create_study(study_name=study_name, storage=study_storage(root),
                                sampler=make_sampler(spec.sampler, sampler_seed),
                                directions=directions, load_if_exists=True)
    if [d.name.lower() for d in study.directions] != directions:
        raise ConfigError(f"optuna study {study_name} in {root} optimises "
                          f"{len(study.directions)} objective(s) in other directions than "
                          f"{', '.join(spec.metrics)} ({', '.join(spec.modes)}); this directory "
                          "was not made from this spec")
    return study


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def submit(spec: SweepSpec, address: str | None = None, log=print) -> Path:
    from gansweep.jobs import study, warm_start

    # All before the directory is made: first what only reads; then the write probe (in a
    # bucket, deleting it leaves a folder marker, so no refusal may follow it but one that
    # needs the cluster); last joining the cluster to look for GPUs
    check_reachable(address)
    data = check_data(spec)
    study.check(spec.study)  # the study's database answers before anything is made
    warm_start.check(spec.warm_start, spec.trainer)
    sd.check_writable(layout.sweep_path(spec.sweep_dir), "storage")
    check_gpus(spec.resources, address, log, spec.py_modules)
    meta, held = sd.create(spec, log)
    try:
        return _run(spec, layout.sweep_path(spec.sweep_dir), meta, data, address, log)
    finally:
        held.release()


def resume(root: str | Path, address: str | None = None, trials: int | None = None,
           budget: dict | None = None, log=print, study_url: str | None = None,
           force: bool = False) -> Path:
    """Continue a sweep: spend only what is left of its budget, or extend it (`trials`,
    `budget`: the new totals, recorded in sweep.json; the frozen spec keeps the original).
    `force` takes the driver lock from a holder not known to be dead."""
    from gansweep.jobs import study
    from gansweep.jobs.spec import RESUMES

    if study_url is not None:
        study.bare(study_url, "--study")  # no password on a command line, before anything
    root = layout.sweep_path(root)
    spec, meta = sd.open_existing(root)
    if meta.rerun is not None:
        raise ConfigError(f"{root} is a seed rerun, not a search: continue it with "
                          f"`gansweep rerun {meta.rerun.of} --resume`")
    if len(meta.runs) >= RESUMES:  # the sampler's seed would leave numpy's range
        raise ConfigError(f"{root} has had {len(meta.runs)} driver runs, the most its seed "
                          "leaves room for; submit its spec under a new name to go on")
    if budget and budget.get("steps") is not None and budget["steps"] < spec.steps:
        raise ConfigError(f"--budget steps={budget['steps']} is less than one run "
                          f"({spec.steps} steps), so no run could start; give a total of at "
                          f"least {spec.steps}")
    _check_budget_left(root, meta, budget or {})
    if trials is not None:
        done = len(configurations(root))
        if trials < done:
            raise ConfigError(f"--trials {trials}: {done} configurations have already "
                              f"started; give at least {done}")
    check_reachable(address)
    data = check_data(spec)
    sd.check_writable(root)  # before the lock file, which needs it too
    check_gpus(spec.resources, address, log, spec.py_modules)
    spec, meta, held = sd.lock(root, "gansweep resume", force=force, log=log)
    try:  # sweep.json as the last driver left it, read under the lock
        if trials is not None:
            meta.trials = trials
        if budget:
            meta.budget = {**meta.budget_in_force(spec.budget), **budget}
        study.attach(root, meta, study_url, log)  # a moved database is recorded by _run
        return _run(spec, root, meta, data, address, log)
    finally:
        held.release()


def _check_budget_left(root, meta: SweepMeta, budget: dict) -> None:
    """A budget given to resume is a new total: one no larger than what was spent would run
    nothing (a user who meant "this much more" is told so, not left with a silent exit 0)."""
    if budget.get("hours") is not None:
        spent = meta.spent_seconds() / 3600
        if budget["hours"] <= spent:
            raise ConfigError(f"--budget hours={budget['hours']:g} is not more than the "
                              f"{spent:.3g} hours already spent; the budget is a total: give "
                              f"more, e.g. hours={spent + budget['hours']:.3g} for "
                              f"{budget['hours']:g} more")
    if budget.get("steps") is not None:
        from gansweep.analysis.sweeps import load_sweep

        spent = load_sweep(root).steps_spent()
        if budget["steps"] <= spent:
            raise ConfigError(f"--budget steps={budget['steps']} is not more than the {spent} "
                              "steps already spent; the budget is a total: give more, e.g. "
                              f"steps={spent + budget['steps']} for {budget['steps']} more")


def configurations(root: Path) -> set[str]:
    """Keys of the configurations (whatever their seeds) in the trial store."""
    store = layout.TrialStore.of(root)
    out = set()
    for key in store.keys():
        record = store.record(key)
        if record is not None:
            out.add(layout.config_key(record.trainer, record.dataset, record.config,
                                      record.steps))
    return out


def finished_keys(root: Path) -> list[str]:
    store = layout.TrialStore.of(root)
    return [k for k in store.keys() if store.has_result(k)]


class _StopOnSignal:
    """SIGINT and SIGTERM (Ctrl-C, a preempted node, a batch scheduler) stop the sweep cleanly.

    Tune's own SIGINT hook leaves no trace a caller can read once `fit()` returns, so it is
    switched off; this handler records the signal and sends SIGUSR1, on which Tune stops its
    trials and saves the experiment. A second signal ends the process at once.
    """

    def __init__(self):
        import signal
        import threading

        self.signalled: str | None = None
        self.previous = {}
        if threading.current_thread() is not threading.main_thread():
            return  # signals reach only the main thread; an embedding caller handles them
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, sig, frame) -> None:
        import signal

        self.signalled = signal.Signals(sig).name
        os.kill(os.getpid(), signal.SIGUSR1)

    def restore(self) -> None:
        import signal

        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# Ray Tune's per-trial work in the driver grows with the trials of one experiment (0.101 ->
# 0.121 s a configuration over 5000, ~124 KB each: docs/benchmarks/scale.md); a driver run
# starts a fresh experiment after this many trials, rebuilding its searcher from the trial
# store and the study as a resume does.
TRIALS_PER_EXPERIMENT = 2000


def _run(spec: SweepSpec, root: Path, meta: SweepMeta, data, address, log) -> Path:
    """One driver run: the races still open, then new configurations while the budget and
    the number of trials allow (jobs/search.py), in one Ray Tune experiment per
    TRIALS_PER_EXPERIMENT trials."""
    import time

    from gansweep.jobs.outcomes import check_not_all_failed

    sd.check_writable(root)
    run_id = uuid.uuid4().hex[:12]
    name = f"run-{len(meta.runs) + 1:03d}"
    per_experiment = TRIALS_PER_EXPERIMENT
    if spec.warm_start:
        from gansweep.jobs import warm_start

        warm_start.apply(open_study(spec, root, meta.study_name, spec.seed), spec.warm_start,
                         spec.to_dict()["metric"], log)
    part = _Part(spec, root, meta, run_id, log, per_experiment)
    search, resumed = part.search(0)
    if search.idle():
        log(f"[gansweep] sweep {spec.name} has nothing left to run ({search.summary()}); "
            "extend it with --trials N or --budget steps=N / hours=H")
        return root
    now = time.time()
    meta.runs.append(DriverRun(run_id=run_id, started=now, seen=now, name=name,
                               versions=driver_versions()))
    layout.write_meta(root, meta)
    if resumed:
        log(f"[gansweep] {resumed} interrupted run(s) resume from their checkpoints")
    if not spec.features:  # the group's own features replace the built-in evaluator
        from gansweep.trainers.registry import get_trainer

        prepare_evaluator(data, root, get_trainer(spec.trainer).OUTPUT, log)
    init_ray(address, log, spec.py_modules)
    log(f"[gansweep] sweep {spec.name}: {spec.trainer} on {dataset_label(spec.dataset)}, objective "
        + " and ".join(f"{m} ({d})" for m, d in zip(spec.metrics, spec.modes))
        + f"; so far {search.summary()}; directory {root}")
    grids, k = [], 0
    while True:
        experiment = name if k == 0 else f"{name}-{k + 1}"
        grids.append((experiment, part.fit(search, experiment)))
        if not search.rolled_over:
            break
        k += 1
        search, _ = part.search(k)
        if search.idle():
            break
        log(f"[gansweep] {per_experiment} trials in one Ray Tune experiment: continuing in a "
            f"fresh one ({search.summary()})")
    if search.budget.expired:
        log(f"[gansweep] the {part.limits['hours']:g} h budget is spent; "
            f"{search.budget.expiry_text()}\n"
            f"  gansweep resume {root} --budget hours=H")
    if all(len(g) and len(g.errors) == len(g) for _, g in grids):  # exit 1, not "done"
        experiment, grid = next((e, g) for e, g in grids if len(g))
        check_not_all_failed(grid, f"{root / layout.TUNE}/{experiment}")
    log(f"[gansweep] done ({search.summary()}). Status: gansweep status {root}")
    return root


class _Part:
    """What each Ray Tune experiment of one driver run is made of: a searcher rebuilt from the
    trial store and the study, its budget, its callbacks."""

    def __init__(self, spec: SweepSpec, root: Path, meta: SweepMeta, run_id: str, log,
                 per_experiment: int):
        self.spec, self.root, self.meta, self.log = spec, root, meta, log
        self.per_experiment = per_experiment
        self.ctl = control(spec, root, run_id)
        self.limits = meta.budget_in_force(spec.budget)
        from gansweep.jobs import tracking

        # runs a tracker missed before (it was down, or is new in spec.yaml) are logged now
        self.tracking = tracking.for_sweep(spec, root, meta, log)

    def search(self, k: int):
        """The k-th experiment's searcher, restored; and how many runs resume."""
        from gansweep.analysis.summary import refresh_summary
        from gansweep.analysis.sweeps import damage_line
        from gansweep.jobs.budget import Budget
        from gansweep.jobs.search import SweepSearch
        from gansweep.search_spaces import make_space

        spec, meta = self.spec, self.meta
        # A sampler seeded as in an earlier run or experiment would replay its random start-up
        # suggestions, which have all run already: each has its own seed.
        runs = len(meta.runs) - (1 if k else 0)
        study = open_study(spec, self.root, meta.study_name, spec.seed + 1000 * runs + k)
        budget = Budget(self.limits["steps"], self.limits["hours"], 0, meta.spent_seconds(),
                        finish_leaders=bool(self.limits.get("finish_leaders")))
        search = SweepSearch(self.ctl, study, make_space(spec.trainer, spec.space,
                                                         dict(spec.fixed), spec.steps),
                             spec.seeds, meta.trials_in_force(spec.trials), budget, self.log,
                             revive=bool((spec.early_stop["collapse"] or {}).get("revive")),
                             per_experiment=self.per_experiment)
        store = layout.TrialStore.of(self.root, repair=True)
        resumed = search.restore(store)
        for note in store.damage:  # set aside now: said before anything trains
            self.log(f"[gansweep] {damage_line(note)}")
        if search.revived_keys:  # results a revival rewrote, perhaps under a killed driver
            refresh_summary(self.root, keys=search.revived_keys)
        return search, resumed

    def fit(self, search, experiment: str):
        from ray import tune

        from gansweep.jobs.budget import BudgetStopper
        from gansweep.jobs.outcomes import RecordOutcomes
        from gansweep.jobs.progress import Progress, RunClock, Summarize, tensorboard_logger
        from gansweep.jobs.stopping import FlagStopper, make_scheduler
        from gansweep.jobs.trial import tune_trainable

        spec, ctl = self.spec, self.ctl
        scheduler = make_scheduler(spec.early_stop, spec.steps)
        if spec.early_stop.get("asha"):
            scheduler.set_search_properties("objective", spec.mode)
        run_config = tune.RunConfig(
            name=experiment, storage_path=str(self.root / layout.TUNE),
            stop=tune.stopper.CombinedStopper(FlagStopper(), BudgetStopper(search.budget)),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            # Tune checkpoints are pointers into the trial store (a few bytes): keep them all
            # rather than force an experiment snapshot each time one is deleted.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=[Progress(spec.metric, spec.mode, log=self.log),
                       RecordOutcomes(ctl, search.budget), Summarize(self.root, ctl),
                       RunClock(self.root, self.meta), tensorboard_logger(),
                       *self.tracking.callbacks(ctl)],
            verbose=0)
        tune_config = tune.TuneConfig(
            search_alg=search, scheduler=scheduler, num_samples=-1,
            max_concurrent_trials=spec.max_concurrent, reuse_actors=True,
            trial_dirname_creator=trial_dirname)
        stop = _StopOnSignal()
        try:
            grid = tune.Tuner(tune_trainable(ctl, spec.resources), tune_config=tune_config,
                              run_config=run_config).fit()
            if stop.signalled:
                raise Interrupted(f"sweep interrupted ({stop.signalled}); every trial keeps the "
                                  "checkpoint of its last report. Continue with:\n"
                                  f"  gansweep resume {self.root}")
        finally:
            stop.restore()
            self.tracking.finish()  # what a tracker still lacks, and its open runs closed
        return grid
