"""Hyperparameter importance from a sweep's Optuna study (fANOVA).

The study lives where sweep.json says (the sweep directory's SQLite file by default, or a
server database, whose password comes from PGPASSWORD / ~/.pgpass), under the name it records.
Collapsed or diverged runs report a deliberate worst objective (inf / -inf) so the searcher
avoids them; that is a penalty, not a measurement, and fANOVA cannot fit it. The importances
are therefore computed on an in-memory copy of the study holding only its COMPLETE trials
with a finite objective, and the page says how many that was.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from gansweep.analysis import layout

MIN_TRIALS = 5
# fANOVA's cost grows faster than the trials it fits (on a 1187-trial sweep: 2-3 s at 250,
# 5.5 s at 500, 19 s at 1000, 25 s at all; at a cap of 2000 it was most of a 78 s report of
# 10 000 configurations). Past this many a fixed random subset is used (the page says so):
# on that sweep 500 gave the same leading parameter within 0.005 as all 1187.
MAX_TRIALS = 500


@dataclass
class Importance:
    ok: bool
    why: str = ""  # when not ok: the reason, one line
    importances: dict[str, float] = field(default_factory=dict)
    n_used: int = 0
    n_complete: int = 0
    log_params: set[str] = field(default_factory=set)


def finite_study(root: Path | layout.UriPath):
    """(in-memory study of the finite COMPLETE trials, number of COMPLETE trials, log-scale
    parameter names) or a string saying why there is none."""
    import optuna
    import sqlalchemy.exc

    try:
        meta = layout.read_meta(root)
    except (OSError, ValueError):
        meta = None
    if meta is None or meta.study_name is None:
        return f"{layout.META} names no Optuna study"
    name = meta.study_name
    url = layout.study_url(root, meta)
    if url is None or meta.rerun is not None or (
            url.startswith("sqlite") and not (root / layout.OPTUNA_DB).is_file()):
        return (f"no Optuna study in this directory ({layout.OPTUNA_DB} is missing; a rerun "
                "has none)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(
            layout.driver_url(url), skip_compatibility_check=True,
            engine_kwargs={"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {})
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False,
                                  states=(optuna.trial.TrialState.COMPLETE,))
    except (KeyError, sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError) as exc:
        return f"the Optuna study {name} could not be read ({type(exc).__name__}: {exc})"
    direction = study.directions[0]
    if len(study.directions) > 1:  # two objectives: the importance for the first
        trials = [optuna.trial.create_trial(params=t.params, distributions=t.distributions,
                                            value=t.values[0]) for t in trials]
    keep = [t for t in trials if t.value is not None and math.isfinite(t.value)]
    if len(keep) > MAX_TRIALS:
        import random

        keep = random.Random(0).sample(keep, MAX_TRIALS)
    copy = optuna.create_study(direction=direction)
    copy.add_trials(keep)
    log_params = {p for t in keep for p, d in t.distributions.items()
                  if getattr(d, "log", False)}
    return copy, len(trials), log_params


def compute(root: str | Path, min_trials: int = MIN_TRIALS, seed: int = 0) -> Importance:
    """fANOVA importances of the searched parameters, or why there are none."""
    import optuna

    got = finite_study(layout.sweep_path(root))
    if isinstance(got, str):
        return Importance(False, got)
    study, n_complete, log_params = got
    trials = study.get_trials(deepcopy=False)
    n = len(trials)
    dropped = n_complete - n
    penalty = (f" ({dropped} collapsed or diverged, whose objective is a penalty, left out)"
               if 0 < dropped and n < MAX_TRIALS else
               f" (a fixed random {MAX_TRIALS} of them: fANOVA's cost grows with the trials)"
               if n >= MAX_TRIALS else "")
    if n < min_trials:
        return Importance(False, f"only {n} complete trial(s) with a finite objective"
                          f"{penalty}; fANOVA needs at least {min_trials}", n_used=n,
                          n_complete=n_complete)
    seen: dict[str, set] = {}
    for t in trials:
        for p, v in t.params.items():
            seen.setdefault(p, set()).add(repr(v))
    # Conditional parameters (absent from some trials) are left out, as Optuna itself does.
    params = sorted(p for p, vals in seen.items()
                    if len(vals) > 1 and all(p in t.params for t in trials))
    if not params:
        return Importance(False, "no searched parameter present in every trial took more "
                          "than one value", n_used=n, n_complete=n_complete)
    values = {t.value for t in trials}
    if len(values) < 2:
        return Importance(False, f"all {n} finite trials have the same objective "
                          f"({next(iter(values)):.4g}): nothing to attribute", n_used=n,
                          n_complete=n_complete)
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
            params=params)
    except (RuntimeError, ValueError) as exc:
        return Importance(False, f"fANOVA failed ({exc})", n_used=n, n_complete=n_complete)
    return Importance(True, penalty.strip(" ()"), dict(imp), n_used=n, n_complete=n_complete,
                      log_params=log_params)
