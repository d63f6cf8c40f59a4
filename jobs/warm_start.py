"""`warm_start`: a new sweep starts from earlier sweeps of the same trainer, for a new dataset
size, longer runs or another seed range. Their best configurations are the first it trains
(Optuna's `enqueue_trial`), and where they optimised the same metric their finished study
trials are given to the sampler as history (`add_trial`), so TPE starts where they left off.

The history is marked (WARM_ATTR) and has no configuration key, so the searcher never counts
it as one of this sweep's configurations (jobs/feedback.py `past` reads only keyed trials);
the enqueued configurations are this sweep's own once asked. Applied once per sweep: the
study remembers it (DONE_ATTR), so a driver killed just after does not give the history twice.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gansweep.trainers.errors import ConfigError

WARM_ATTR = "gansweep_warm_start"  # user attribute of a history trial: the sweep it is from
DONE_ATTR = "gansweep_warm_started"  # study attribute: the warm start was applied
TOP = 5


def parse(value: Any) -> dict | None:
    """`warm_start: DIR`, a list of them, or {sweeps: [DIR, ...], top: K}, as written (local
    paths made absolute); `check` reads them when a sweep is submitted."""
    if value is None:
        return None
    fix = ("write warm_start: SWEEP_DIR, a list of them, or {sweeps: [SWEEP_DIR, ...], "
           f"top: {TOP}}} (earlier sweeps of this trainer)")
    if isinstance(value, str):
        value = {"sweeps": [value]}
    elif isinstance(value, list):
        value = {"sweeps": value}
    if not isinstance(value, dict) or set(value) - {"sweeps", "top"} or not value.get("sweeps"):
        raise ConfigError(f"warm_start: {value!r} is not valid; {fix}")
    sweeps = value["sweeps"]
    if isinstance(sweeps, str):
        sweeps = [sweeps]
    top = value.get("top", TOP)
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ConfigError(f"warm_start.top: {top!r} is not valid; write a whole number >= 0 "
                          "(0: give the sampler the history only)")
    if not isinstance(sweeps, list) or not all(isinstance(s, str) and s for s in sweeps):
        raise ConfigError(f"warm_start.sweeps: {sweeps!r} is not valid; {fix}")
    return {"sweeps": [s if "://" in s else str(Path(s).expanduser().resolve())
                       for s in sweeps], "top": top}


def check(warm: dict | None, trainer: str) -> None:
    """At submission, before anything is made: each source is a sweep of the same trainer.
    (A resume does not read them again: the warm start was applied when the sweep began.)"""
    for source in (warm or {}).get("sweeps", ()):
        _check_source(source, trainer)


def _check_source(path: str, trainer: str) -> None:
    from gansweep.analysis.layout import check_uri, sweep_path
    from gansweep.analysis.sweeps import is_sweep_dir
    from gansweep.jobs.sweep_dir import read_frozen

    if "://" in path:
        try:
            check_uri(path)
        except ConfigError as exc:
            raise ConfigError(f"warm_start: {exc}") from None
    try:
        found = is_sweep_dir(path)
    except OSError as exc:
        raise ConfigError(f"warm_start: {path} cannot be read ({exc})") from None
    if not found:
        raise ConfigError(f"warm_start: {path} is not a gansweep sweep directory; give the "
                          "directory an earlier `gansweep submit` made (storage/name)")
    spec, _ = read_frozen(sweep_path(path))
    if spec.get("trainer") != trainer:
        raise ConfigError(f"warm_start: {path} swept trainer {spec.get('trainer')}, not "
                          f"{trainer}; its configurations do not apply here")


def apply(study, warm: dict | None, metric: Any, log=print) -> None:
    """Enqueue the sources' top configurations and hand their history to the sampler."""
    if not warm or study.user_attrs.get(DONE_ATTR):
        return
    study.set_user_attr(DONE_ATTR, True)  # first: a kill mid-way loses some, never doubles
    for source in warm["sweeps"]:
        queued, given, skipped = _apply_one(study, source, warm["top"], metric)
        what = f"{queued} of its top configurations queued first"
        if given is None:
            what += "; its history not given to the sampler (it optimised another metric)"
        else:
            what += f", {given} finished trials given to the sampler as history"
            if skipped:
                what += f" ({skipped} whose parameters no longer fit this space left out)"
        log(f"[gansweep] warm start from {source}: {what}")


def _apply_one(study, source: str, top: int, metric: Any) -> tuple[int, int | None, int]:
    import optuna

    from gansweep.analysis.layout import sweep_path
    from gansweep.analysis.sweeps import load_sweep
    from gansweep.jobs.feedback import CID_ATTR, REVIVED_ATTR
    from gansweep.jobs.study import open_for
    from gansweep.jobs.sweep_dir import read_frozen

    root = sweep_path(source)
    spec, meta = read_frozen(root)
    old = optuna.load_study(study_name=meta.study_name, storage=open_for(root))
    trials = [t for t in old.get_trials(deepcopy=False) if REVIVED_ATTR not in t.user_attrs]
    params = {t.user_attrs.get(CID_ATTR): t.params for t in trials if t.params}
    ranked = load_sweep(root).configurations
    if len(ranked):
        ranked = ranked[ranked["rank"].notna()].sort_values("rank")
    queued = 0
    for key in list(ranked["config_key"])[:top] if len(ranked) else []:
        if key in params:
            study.enqueue_trial(params[key], skip_if_exists=True)
            queued += 1
    if spec.get("metric") != metric:
        return queued, None, 0
    given = skipped = 0
    for t in trials:
        if t.state != optuna.trial.TrialState.COMPLETE:
            continue
        try:
            study.add_trial(optuna.trial.create_trial(
                params=t.params, distributions=t.distributions, values=t.values,
                user_attrs={WARM_ATTR: source}))
            given += 1
        except ValueError:  # a parameter whose kind changed (float -> choices) in this space
            skipped += 1
    return queued, given, skipped
