"""The Ray Tune entry point: the only place trainers meet Ray (`tune.report`,
`tune.get_context`). Everything it persists goes to the sweep's trial store, keyed by
configuration, so a trial resumes from its own checkpoint under whatever trial id Tune gives it.
"""
from __future__ import annotations

import functools
import json
import math
import os
import tempfile
import time

import numpy as np

from trainers.collapse import CollapseDetector
from trainers.store import TrialStore, trial_key

SWEEP_KEY = "_sweep"  # the sweep's control settings inside a trial's config, never hashed


def split_config(config: dict) -> tuple[dict, dict]:
    ctl = config[SWEEP_KEY]
    hp = {k: v for k, v in config.items() if k != SWEEP_KEY}
    return ctl, hp


def key_for(ctl: dict, hp: dict) -> str:
    from trainers.run import resolve_config

    config = resolve_config(ctl["trainer"], ctl["dataset"], hp, ctl["steps"])
    return trial_key(ctl["trainer"], ctl["dataset"], config, ctl["seed"], ctl["steps"])


def objective(row: dict, ctl: dict) -> float:
    """The value the searcher sees: the metric, or a deliberate worst value for runs that
    collapsed or diverged so TPE learns to avoid that region (the metric column stays honest)."""
    worst = math.inf if ctl["mode"] == "min" else -math.inf
    if row.get("collapsed") or row.get("diverged"):
        return worst
    value = row.get(ctl["metric"])
    return worst if value is None or not math.isfinite(value) else float(value)


def stored_objective(value) -> float | None:
    """An objective read back from result.json, where strict JSON stores a penalty as the
    string "-inf" / "inf": a number again (a string would reach Optuna, which cannot take it,
    and ASHA, which cannot compare it). None stays None (Optuna then records the trial as
    pruned)."""
    return None if value is None else float(value)


@functools.lru_cache(maxsize=4)
def _cached_dataset(dataset_json: str, image_size: int | None):

    from trainers.data import load_dataset

    return load_dataset(json.loads(dataset_json), image_size=image_size)


def _load(dataset, image_size=None):
    """Datasets are loaded once per worker process; reused actors skip the reload."""

    return _cached_dataset(json.dumps(dataset, sort_keys=True), image_size)


def _build(ctl: dict, hp: dict):
    import torch

    from trainers.run import build

    torch.set_num_threads(max(1, int(ctl.get("threads", 1))))
    if ctl.get("evaluators"):
        os.environ["GANSWEEP_EVALUATORS"] = ctl["evaluators"]
    return build(ctl["trainer"], ctl["dataset"], hp, ctl["seed"], steps=ctl["steps"],
                 loader=_load)


def make_trainable(run_id: str):
    """The function Tune runs, bound to this driver run (a restored sweep gets a new run id,
    which is how a lease left by a killed driver is recognised as stale)."""

    def gansweep_trial(config: dict) -> None:
        return trainable(config, run_id)

    return gansweep_trial


def trainable(config: dict, run_id: str) -> None:
    from ray import tune

    ctl, hp = split_config(config)
    store = TrialStore(ctl["store"])
    key = key_for(ctl, hp)
    trial_id = tune.get_context().get_trial_id() or f"local-{os.getpid()}"

    done = store.read_json(key, "result.json")
    if done is None and not store.claim(key, run_id, trial_id):
        done = store.read_json(key, "result.json")
    if done is not None:  # this configuration already ran to its end: nothing runs twice
        final = {k: v for k, v in done["final"].items() if not isinstance(v, str)}
        tune.report({**final, "objective": stored_objective(done["objective"]), "key": key,
                     "reused": True, "stop_reason": done["stop_reason"]})
        return

    trainer = _build(ctl, hp)
    detector = CollapseDetector(**ctl["collapse"])
    history: list[dict] = []
    saved = _load_state(store, key)
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        history = [r for r in saved["history"] if r["step"] <= trainer.step]
        detector.load_state_dict(saved["detector"])
    else:
        store.write_json(key, "config.json", {
            "key": key, "trainer": ctl["trainer"], "dataset": ctl["dataset"],
            "seed": ctl["seed"], "steps": ctl["steps"], "config": trainer.config,
            "first_trial_id": trial_id, "created": time.time(), "node_id": _node_id(),
            "device": str(trainer.device)})
    resumed_from = trainer.step

    def as_report(row: dict, reason: str) -> dict:
        report = {k: v for k, v in row.items() if not isinstance(v, str)}
        report.update(objective=objective(row, ctl), key=key, stop_reason=reason)
        return report

    def finish(row: dict) -> None:
        _finish(store, key, trainer, ctl, row, trial_id, resumed_from)
        # Resuming reads the trial store (keyed by configuration, so it survives Tune
        # re-creating trials under new ids); the Tune checkpoint, reported once at the end,
        # only points Ray's Result.checkpoint at the configuration's entry there.
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "pointer.json"), "w") as f:
                json.dump({"store": store.path(key), "step": trainer.step}, f)
            tune.report(as_report(row, _reason(row) or "completed"),
                        checkpoint=tune.Checkpoint.from_directory(tmp))

    def on_report(row: dict) -> bool:
        row["collapsed"] = detector.update(row)
        store.write_torch(key, "state.pt", {"trainer": trainer.state_dict(), "history": history,
                                            "detector": detector.state_dict()})
        store.write(key, "metrics.csv", metrics_csv(history).encode())
        stop = bool(row["collapsed"] or row["diverged"])
        if stop or trainer.step >= ctl["steps"]:
            finish(row)
        else:
            tune.report(as_report(row, "running"))
        return stop

    from trainers.run import metrics_csv, train_loop

    if history and (trainer.step >= ctl["steps"] or _reason(history[-1])):
        # Killed after its final checkpoint but before its result was written.
        finish(history[-1])
        return
    train_loop(trainer, ctl["steps"], ctl["report_every"], ctl.get("score_every"), history,
               on_report, required=(ctl["metric"],))


def _load_state(store: TrialStore, key: str) -> dict | None:
    """The configuration's checkpoint; an unreadable one is moved aside (kept, never
    overwritten) and the configuration trains again from step 0."""
    import sys

    try:
        return store.read_torch(key, "state.pt")
    except Exception as exc:  # a torn or foreign file: torch raises many kinds
        aside = f"state.pt.corrupt-{int(time.time())}"
        store.fs.move(store.path(key, "state.pt"), store.path(key, aside))
        print(f"[gansweep] checkpoint {store.path(key, 'state.pt')} is unreadable ({exc}); "
              f"kept as {aside}, training this configuration from step 0", file=sys.stderr)
        return None


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _reason(row: dict) -> str | None:
    return "diverged" if row.get("diverged") else "collapsed" if row.get("collapsed") else None


def _finish(store: TrialStore, key: str, trainer, ctl: dict, row: dict, trial_id: str,
            resumed_from: int) -> None:
    """Write the configuration's final outputs: samples (or SOM weights) and its result."""
    import io

    from trainers.run import final_output

    if trainer.name == "som" or not row.get("diverged"):  # a diverged GAN has no samples
        name, array = final_output(trainer)
        buf = io.BytesIO()
        np.save(buf, array)
        store.write(key, name, buf.getvalue())
    store.write_json(key, "result.json", {
        "key": key, "stop_reason": _reason(row) or "completed", "stop_step": trainer.step,
        "objective": objective(row, ctl), "final": row, "trial_id": trial_id,
        "resumed_from_step": resumed_from, "time_s": row.get("time_s"), "node_id": _node_id(),
        "finished": time.time()})
