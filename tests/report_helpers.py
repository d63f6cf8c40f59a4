"""Sweeps for the report tests: real tiny ones (a real local Ray, shared by the report test
modules through a per-session memo) and synthetic ones written file by file in the sweep
directory layout (hundreds of configurations in seconds, with known outcomes)."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml

from tests.conftest import tiny_spec

_MEMO: dict[str, dict] = {}


def real_sweeps(tmp_path_factory) -> dict:
    """A GAN sweep (ring8, objective fid, 5 configurations), a SOM sweep (digits, 3), a seed
    rerun of the SOM's top 2 under 2 seeds, and a half-finished copy of the GAN sweep. Built
    once per session, whichever report test module asks first (the caller holds ray_local)."""
    if "real" in _MEMO:
        return _MEMO["real"]
    from gansweep.jobs.rerun import rerun
    from gansweep.jobs.spec import parse_spec
    from gansweep.jobs.submit import submit

    def quiet(*_):
        return None

    storage = tmp_path_factory.mktemp("report-sweeps")
    gan = submit(parse_spec(tiny_spec(storage, name="gan-ring8", trials=5, metric="fid",
                                      steps=20, report_every=10)), log=quiet)
    som = submit(parse_spec({"name": "som-digits", "trainer": "som", "dataset": "digits",
                             "trials": 3, "steps": 4, "report_every": 2,
                             "metric": "quantization_error", "fixed": {"rows": 4},
                             "seeds": 1, "storage": str(storage)}), log=quiet)
    som_rerun = rerun(som, top=2, seeds=2, log=quiet)
    half = storage / "gan-half"
    make_half_finished(gan, half)
    _MEMO["real"] = {"storage": storage, "gan": gan, "som": som, "rerun": som_rerun,
                     "half": half}
    return _MEMO["real"]


def make_half_finished(src: Path, dst: Path) -> str:
    """A copy of a finished sweep plus one configuration that has reported once and has no
    result (what a running or interrupted configuration leaves); returns its key."""
    dst.mkdir(parents=True)
    for name in ("spec.yaml", "sweep.json", "optuna.db"):
        shutil.copy(src / name, dst / name)
    shutil.copytree(src / "trials", dst / "trials")
    first = min((dst / "trials").iterdir())
    key = "0" * 16
    entry = dst / "trials" / key
    entry.mkdir()
    record = json.loads((first / "config.json").read_text())
    record["key"] = key
    record["config"]["lr_g"] = record["config"]["lr_g"] * 1.5
    (entry / "config.json").write_text(json.dumps(record))
    lines = (first / "metrics.csv").read_text().splitlines()
    (entry / "metrics.csv").write_text("\n".join(lines[:2]) + "\n")
    return key


# ---- synthetic sweeps ----------------------------------------------------------------------

def fake_sweep(root: Path, n: int, trainer: str = "gan", dataset: str = "ring8",
               metric: str = "modes_captured", steps: int = 1000, every: int = 100,
               seed: int = 0, with_study: bool = True) -> Path:
    """A finished sweep directory with n configurations, about a fifth of which collapse
    (stopped early at a known step), in the exact file layout a real sweep leaves."""
    import optuna

    root = Path(root)
    (root / "trials").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    mode = "min" if metric in ("fid", "quantization_error") else "max"
    spec = {"name": root.name, "trainer": trainer, "dataset": dataset, "trials": n,
            "steps": steps, "report_every": every, "metric": metric, "seed": 0}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec))
    study_name = f"{root.name}-0000"
    (root / "sweep.json").write_text(json.dumps({"study_name": study_name, "runs": []}))
    dists = {"lr_g": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "lr_d": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
             "beta1": optuna.distributions.FloatDistribution(0.0, 0.9),
             "loss": optuna.distributions.CategoricalDistribution(["minimax", "nonsaturating"])}
    frozen = []
    for i in range(n):
        p = {"lr_g": float(10 ** rng.uniform(-4, -2)), "lr_d": float(10 ** rng.uniform(-4, -2)),
             "beta1": float(rng.uniform(0, 0.9)),
             "loss": str(rng.choice(["minimax", "nonsaturating"]))}
        good = math.exp(-abs(math.log10(p["lr_d"]) + 3))  # lr_d near 1e-3 is what matters
        collapsed = p["lr_d"] > 4e-3 and rng.uniform() < 0.8
        stop = int(rng.integers(3, 8)) * every if collapsed else steps
        if mode == "max":
            value = float(np.clip(round(8 * good + rng.normal(0, 0.4)), 0, 8))
        else:
            value = float(1.0 - 0.8 * good + rng.normal(0, 0.02))
        objective = (-math.inf if mode == "max" else math.inf) if collapsed else value
        key = f"{i:04d}{int(rng.integers(1 << 40)):012x}"
        d = root / "trials" / key
        d.mkdir()
        (d / "config.json").write_text(json.dumps({
            "key": key, "trainer": trainer, "dataset": dataset, "seed": 0, "steps": steps,
            "config": {**p, "width": 64, "batch_size": 128}, "created": 1000.0 + i}))
        rows = []
        for s in range(every, stop + 1, every):
            if trainer == "som":  # a map reports its errors, no losses or sample scores
                signals = {"unit_utilization": 0.1 if collapsed else 0.9}
            else:
                signals = {"loss_g": 1 + rng.normal(0, 0.1), "loss_d": 1.3 - 0.3 * s / steps,
                           "mode_diversity": 0.05 if collapsed else min(1.0, good)}
            # every real report carries what the run cost so far (jobs/loop.py)
            rows.append({"step": s, **signals, metric: value, "diverged": False,
                         "time_s": s * 0.01, "train_seconds": s * 0.01,
                         "steps_per_second": 100.0, "collapsed": collapsed and s == stop})
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        (d / "metrics.csv").write_text(buf.getvalue())
        (d / "result.json").write_text(json.dumps({
            "key": key, "stop_reason": "collapsed" if collapsed else "completed",
            "stop_step": stop, "objective": objective if math.isfinite(objective)
            else str(objective), "final": rows[-1], "time_s": rows[-1]["time_s"],
            "finished": 1000.5 + i}))
        if dataset == "digits":
            x = np.tanh(rng.normal(0, 1, (64, 1, 8, 8)))
        else:
            ang = rng.integers(0, 8, 500) * 2 * np.pi / 8
            x = np.stack([np.cos(ang), np.sin(ang)], 1) + rng.normal(0, 0.02, (500, 2))
        np.save(d / "samples.npy", x.astype(np.float32))
        frozen.append(optuna.trial.create_trial(params=p, distributions=dists,
                                                value=objective))
    if with_study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # sqlite commits each trial with an fsync: build the file in memory-backed /dev/shm
        # when there is one (50 ms -> 1 ms a trial), then move it into place
        with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir()
                                         else None) as tmp:
            db = Path(tmp) / "optuna.db"
            storage = optuna.storages.RDBStorage(f"sqlite:///{db}")
            study = optuna.create_study(study_name=study_name, storage=storage,
                                        direction="minimize" if mode == "min" else "maximize")
            study.add_trials(frozen)
            storage.engine.dispose()
            shutil.copy(db, root / "optuna.db")
    return root
