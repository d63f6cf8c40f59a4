"""Submit or resume a sweep: Optuna chooses configurations, Ray Tune places the trials.

Nothing here runs before the spec, the data and the sweep directory have been checked.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from analysis import layout
from jobs import sweep_dir as sd
from jobs.spec import SweepSpec
from jobs.stopping import collapse_rule
from jobs.trial import TrialControl
from trainers.errors import ConfigError, Interrupted


def control(spec: SweepSpec, root: Path, run_id: str) -> TrialControl:
    """The sweep's settings every trial of this driver run needs; never hashed."""
    return TrialControl(
        trainer=spec.trainer, dataset=spec.dataset, seed=spec.seed, steps=spec.steps,
        report_every=spec.report_every, score_every=spec.score_every, metric=spec.metric,
        mode=spec.mode, store=str(root / layout.TRIALS),
        evaluators=str(root / layout.EVALUATORS), run_id=run_id,
        threads=max(1, int(spec.resources["cpu"])),
        collapse=collapse_rule(spec.early_stop, spec.trainer, spec.steps))


def check_data(spec: SweepSpec):
    """Load the dataset once in the driver, so a missing file or an offline-only source is
    reported before Ray starts, not in every trial. Returns it."""
    from trainers.registry import build

    return build(spec.trainer, spec.dataset, dict(spec.fixed), spec.seed, device="cpu",
                 steps=spec.steps).data


def prepare_evaluator(data, root: Path, log=print) -> None:
    """Train the image evaluator once, in the sweep directory, before any trial starts; every
    trial on every node then loads that one copy instead of training its own."""
    if data.kind != "image":
        return
    from analysis.evaluator import load_or_train

    where = root / layout.EVALUATORS
    log(f"[gansweep] evaluator features for {data.name} ({'x'.join(map(str, data.shape))}) "
        f"in {where}")
    load_or_train(data, where)


def init_ray(address: str | None, log=print) -> None:
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return
    if address:
        log(f"[gansweep] joining the Ray cluster at {address}")
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        log(f"[gansweep] starting a local Ray on this machine ({os.cpu_count()} CPUs)")
        ray.init(include_dashboard=False, log_to_driver=False)


def study_storage(root: Path):
    """The Optuna storage the sweep directory records (jobs/study.py)."""
    from jobs import study

    return study.open_for(root)


def searcher(spec: SweepSpec, root: Path, study_name: str, sampler_seed: int):
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import make_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fixed = dict(spec.fixed)
    return OptunaSearch(space=make_space(spec.trainer, spec.space, fixed, spec.steps),
                        metric="objective", mode=spec.mode,
                        sampler=optuna.samplers.TPESampler(seed=sampler_seed),
                        study_name=study_name, storage=study_storage(root))


def trial_dirname(trial) -> str:
    return f"trial_{trial.trial_id}"


def build_tuner(spec: SweepSpec, root: Path, meta: dict, run_id: str, num_samples: int,
                name: str, sampler_seed: int, progress):
    from ray import tune

    from jobs.outcomes import RecordOutcomes
    from jobs.progress import tensorboard_logger
    from jobs.stopping import FlagStopper, make_scheduler
    from jobs.trial import tune_trainable

    scheduler = make_scheduler(spec.early_stop, spec.steps)
    if spec.early_stop.get("asha"):
        scheduler.set_search_properties("objective", spec.mode)
    ctl = control(spec, root, run_id)
    run_config = tune.RunConfig(
        name=name, storage_path=str(root / layout.TUNE), stop=FlagStopper(),
        failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        # Tune checkpoints are pointers into the trial store (a few bytes): keep them all rather
        # than force an experiment snapshot each time one is deleted.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[progress, RecordOutcomes(ctl), tensorboard_logger()],
        verbose=0)
    tune_config = tune.TuneConfig(
        search_alg=searcher(spec, root, meta["study_name"], sampler_seed), scheduler=scheduler,
        num_samples=num_samples, max_concurrent_trials=spec.max_concurrent, reuse_actors=True,
        trial_dirname_creator=trial_dirname)
    return tune.Tuner(tune_trainable(ctl, spec.resources), tune_config=tune_config,
                      run_config=run_config)


def submit(spec: SweepSpec, address: str | None = None, log=print) -> Path:
    from jobs import study

    data = check_data(spec)
    study.check(spec.study)  # the study's database answers before anything is made
    meta = sd.create(spec)
    return _run(spec, layout.sweep_path(spec.sweep_dir), meta, data, address, log)


def resume(root: str | Path, address: str | None = None, trials: int | None = None,
           log=print, study_url: str | None = None) -> Path:
    from jobs import study

    root = layout.sweep_path(root)
    spec, meta = sd.open_existing(root)
    if "rerun" in meta:
        raise ConfigError(f"{root} is a seed rerun, not a search: continue it with "
                          f"`gansweep rerun {meta['rerun']['of']} --resume`")
    if trials is not None:
        done = len(finished_keys(root))
        if trials < done:
            raise ConfigError(f"--trials {trials}: {done} configurations have already "
                              f"finished; give at least {done}")
        meta["trials"] = trials
    data = check_data(spec)
    study.attach(root, meta, study_url, log)  # a moved database is recorded by _run
    return _run(spec, root, meta, data, address, log)


def finished_keys(root: Path) -> list[str]:
    store = layout.TrialStore.of(root)
    return [k for k in store.keys() if store.has_result(k)]


def requeue_unfinished(spec: SweepSpec, root: Path, study_name: str, log=print) -> int:
    """After an interruption: trials a dead driver left RUNNING in Optuna are marked failed,
    and every configuration with a checkpoint but no result is queued again, so the next
    trials Optuna hands out are exactly those, and each resumes from its own checkpoint."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=study_storage(root))
    expected = optuna.study.StudyDirection.MINIMIZE if spec.mode == "min" else \
        optuna.study.StudyDirection.MAXIMIZE
    if study.direction != expected:
        raise ConfigError(f"optuna study {study_name} in {root} optimises in the other "
                          "direction; this directory was not made from this spec")
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
    store = layout.TrialStore.of(root)
    queued = 0
    for key in store.keys():
        record = store.read_json(key, layout.CONFIG)
        if record is None or store.has_result(key):
            continue
        if not any(w.system_attrs.get("fixed_params") == record["config"] for w in waiting):
            study.enqueue_trial(record["config"], skip_if_exists=False)
        queued += 1
    if queued:
        log(f"[gansweep] {queued} interrupted configuration(s) resume from their checkpoints")
    return queued


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


def _run(spec: SweepSpec, root: Path, meta: dict, data, address, log) -> Path:
    """One driver run: as many Tune trials as configurations are still missing."""
    import time

    from jobs.progress import Progress

    sd.check_writable(root)
    target = meta.get("trials", spec.trials)
    if target - len(finished_keys(root)) <= 0:
        log(f"[gansweep] sweep {spec.name} already has its {target} configurations; raise "
            "them with --trials N")
        return root
    run_id = uuid.uuid4().hex[:12]
    meta["runs"].append({"run_id": run_id, "started": time.time(),
                         "name": f"run-{len(meta['runs']) + 1:03d}"})
    sd.write_meta(root, meta)
    if len(meta["runs"]) > 1:
        requeue_unfinished(spec, root, meta["study_name"], log)
    prepare_evaluator(data, root, log)
    init_ray(address, log)
    log(f"[gansweep] sweep {spec.name}: {target} configurations of {spec.trainer} on "
        f"{spec.dataset}, objective {spec.metric} ({spec.mode}); directory {root}")
    stop = _StopOnSignal()
    try:
        # Optuna may, rarely, suggest a configuration that already finished: it returns its
        # stored result at once, and another round tops the sweep up to its number.
        for round_ in range(3):
            missing = target - len(finished_keys(root))
            if missing <= 0:
                break
            # A sampler seeded as in the last run would replay its random start-up
            # suggestions, which have all run already: each run and round has its own seed.
            seed = spec.seed + 1000 * (len(meta["runs"]) - 1) + round_
            name = meta["runs"][-1]["name"] + (f"-{round_}" if round_ else "")
            progress = Progress(spec.metric, spec.mode, missing, log=log)
            build_tuner(spec, root, meta, run_id, missing, name, seed, progress).fit()
            if stop.signalled:
                raise Interrupted(f"sweep interrupted ({stop.signalled}); every trial keeps the "
                                  "checkpoint of its last report. Continue with:\n"
                                  f"  gansweep resume {root}")
    finally:
        stop.restore()
    log(f"[gansweep] done. Status: gansweep status {root}")
    return root
