"""The Ray Tune trainable every sweep and rerun trial runs, and its constant settings.

A trial gets its hyperparameters from the searcher (Tune's `config`, plus a `seed` where the
trial's seed is not the sweep's) and everything else from one frozen `TrialControl`, handed
over with `tune.with_parameters`. It trains one configuration, keyed in the trial store by
(trainer, dataset, configuration, seed, steps): a stored result is returned at once, a
checkpoint is resumed, a new configuration starts from step 0. Every report checkpoints to the
store, so a killed trial loses at most one report interval. A trial handed `revive` trains a
collapsed run on from where it paused, to its end, with collapse detection off (the searcher
decides which: jobs/search.py).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from gansweep.analysis import layout
from gansweep.analysis.layout import TrialStore, config_key, trial_key
from gansweep.analysis.records import RunRecord
from gansweep.jobs.collapse import CollapseRule
from gansweep.jobs.frozen import FrozenDict

# Keys of Tune's config that are not hyperparameters: a trial's own seed, which of a
# rerun's configurations it trains, and whether it revives a paused (collapsed) run.
SEED, RERUN_INDEX, REVIVE = "seed", "rerun_index", "revive"
RESERVED = (SEED, RERUN_INDEX, REVIVE)
NODE_INFO = "node_info"  # a report's JSON of the node's versions and devices (first report)


@dataclass(frozen=True)
class TrialControl:
    """What every trial of one driver run shares: the sweep's settings, never hashed."""

    trainer: str
    dataset: str | FrozenDict
    seed: int
    steps: int
    report_every: int
    score_every: int | None
    metric: str
    mode: str
    store: str  # the trial store's root (SWEEP_DIR/trials)
    evaluators: str  # where the driver put the image evaluator every trial loads
    run_id: str  # this driver run; a lease of another run is stale
    threads: int = 1
    collapse: CollapseRule = field(default_factory=CollapseRule)
    penalize: bool = True  # collapsed and diverged runs are told the worst value
    features: Any = None  # the group's own feature network, or inception (analysis/features.py)
    metric_2: str | None = None  # a two-objective sweep's second objective, and its direction
    mode_2: str | None = None
    gpus: float = 0.0  # the GPUs one trial holds (resources.gpu): gpu_seconds
    figures: bool = False  # a figure at each full score, for the trackers (jobs/tracking)

    @property
    def metrics(self) -> tuple[str, ...]:
        return (self.metric,) if self.metric_2 is None else (self.metric, self.metric_2)

    def hyperparameters(self, config: dict) -> dict:
        return {k: v for k, v in config.items() if k not in RESERVED}

    def seed_of(self, config: dict) -> int:
        return int(config.get(SEED, self.seed))

    def resolved(self, config: dict) -> dict:
        """The full configuration the trial trains (defaults filled in)."""
        from gansweep.trainers.registry import resolve_config

        return resolve_config(self.trainer, self.dataset, self.hyperparameters(config),
                              self.steps)

    def key(self, config: dict) -> str:
        """The trial store key of the configuration (and seed) Tune handed a trial."""
        return trial_key(self.trainer, self.dataset, self.resolved(config),
                         self.seed_of(config), self.steps)

    def key_of(self, trial) -> str | None:
        """The trial store key of a Tune trial: its last report's, else its configuration's;
        None for a configuration that cannot resolve (it has no entry)."""
        key = (trial.last_result or {}).get("key")
        if key is None:
            try:
                key = self.key(trial.config or {})
            except Exception:  # noqa: BLE001 - whatever a bad configuration raises
                return None
        return key

    def config_key(self, config: dict, resolved: bool = False) -> str:
        """The configuration's key whatever the seed (`resolved`: `config` is complete)."""
        full = config if resolved else self.resolved(config)
        return config_key(self.trainer, self.dataset, full, self.steps)

    def record(self, config: dict, trial_id: str, node_id: str | None = None,
               device: str | None = None, gpu_ids: list[str] | None = None) -> RunRecord:
        """config.json: what the configuration's store entry trains (where: unknown to a
        driver recording a trial that failed before its first write)."""
        return RunRecord(key=self.key(config), trainer=self.trainer, dataset=self.dataset,
                         seed=self.seed_of(config), steps=self.steps,
                         config=self.resolved(config), first_trial_id=trial_id,
                         created=time.time(), node_id=node_id, device=device, gpu_ids=gpu_ids)

    def objective(self, row: dict) -> float:
        """The value the searcher sees: the metric, or (`penalize`) a deliberate worst value
        for runs that collapsed or diverged so TPE learns to avoid that region (the metric
        column stays honest)."""
        return self._objective(row, self.metric, self.mode)

    def objective_2(self, row: dict) -> float:
        """The second objective as the searcher sees it, penalised as `objective` is."""
        return self._objective(row, self.metric_2, self.mode_2)

    def objectives(self, row: dict) -> dict[str, float]:
        """What a report adds: `objective`, and `objective_2` for a second objective."""
        out = {"objective": self.objective(row)}
        if self.metric_2 is not None:
            out["objective_2"] = self.objective_2(row)
        return out

    def _objective(self, row: dict, metric: str, mode: str) -> float:
        worst = math.inf if mode == "min" else -math.inf
        if self.penalize and layout.stop_reason(row):
            return worst
        value = row.get(metric)
        return worst if value is None or not math.isfinite(value) else float(value)


@functools.lru_cache(maxsize=4)
def _cached_dataset(dataset_json: str, image_size: int | None):
    from gansweep.trainers.data import load_dataset

    return load_dataset(json.loads(dataset_json), image_size=image_size)


def _load(dataset, image_size=None):
    """Datasets are loaded once per worker process; reused actors skip the reload."""
    return _cached_dataset(json.dumps(dataset, sort_keys=True), image_size)


def trainable(config: dict, control: TrialControl) -> None:
    """One trial: `tune.with_parameters(trainable, control=...)`."""
    import torch
    from ray import tune

    from gansweep.analysis.evaluator import for_dataset, scores_through
    from gansweep.analysis.features import load as load_features
    from gansweep.jobs.loop import train_loop
    from gansweep.jobs.provenance import node_info
    from gansweep.jobs.resources import trial_device
    from gansweep.trainers.registry import build

    store = TrialStore(control.store, repair=True)
    key = control.key(config)
    seed = control.seed_of(config)
    trial_id = tune.get_context().get_trial_id() or f"local-{os.getpid()}"

    done = store.result(key)
    if (config.get(REVIVE) and done is not None and done.stop_reason == layout.COLLAPSED
            and done.revived is None):
        store.claim(key, control.run_id, trial_id, ended=True)
        store.reopen(key)
        done = None
    elif done is None and not store.claim(key, control.run_id, trial_id):
        done = store.result(key)
    if done is not None:  # this configuration already ran to its end: nothing runs twice
        # The objective as a number (RunResult reads strict JSON's "-inf" back as one): a
        # string would reach Optuna, which cannot take it, and ASHA, which cannot compare it.
        final = {k: v for k, v in done.final.items() if not isinstance(v, str)}
        if control.metric_2 is not None:  # strict JSON keeps a penalty as "-inf"
            final["objective_2"] = _number(done.final.get("objective_2"))
        tune.report({**final, "objective": done.objective, "key": key, "reused": True,
                     "stop_reason": done.stop_reason})
        return

    torch.set_num_threads(max(1, control.threads))
    # Placed by the GPUs Ray assigned this trial; a GPU torch cannot use fails the trial here,
    # before a step is trained on the CPU in its place.
    device = str(trial_device())
    trainer = build(control.trainer, control.dataset, control.hyperparameters(config), seed,
                    device=device, steps=control.steps, loader=_load)
    evaluator = (load_features(control.features, device) if control.features
                 else for_dataset(trainer.data, control.evaluators)
                 if scores_through(trainer.OUTPUT, trainer.data) else None)
    # A revived run (revived.json, which survives a kill mid-revival) trains to its end.
    revived = store.revival(key) is not None
    rule = dataclasses.replace(control.collapse, enabled=False) if revived else control.collapse
    detector = rule.detector()
    history: list[dict] = []
    saved = _load_state(store, key)
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        history = [r for r in saved["history"] if r["step"] <= trainer.step]
        detector.load_state_dict(saved["detector"])
    else:
        store.write_record(key, control.record(config, trial_id, node_id=_node_id(),
                                               device=str(trainer.device), gpu_ids=_gpu_ids()))
    resumed_from = trainer.step
    unsaid = [n["file"] for n in store.damage]  # told to the driver with the first report
    # What this node has (versions, devices), told once per trial: sweep.json keeps it per
    # driver run (jobs/progress.py RunClock)
    node = [json.dumps({**node_info(), "node_id": _node_id()})]

    def as_report(row: dict, reason: str) -> dict:
        report = {k: v for k, v in row.items() if not isinstance(v, str)}
        report.update(control.objectives(row), key=key, stop_reason=reason)
        if unsaid:
            report[layout.DAMAGED_FILES] = ",".join(unsaid)
            unsaid.clear()
        if node:
            report[NODE_INFO] = node.pop()
        return report

    def finish(row: dict) -> None:
        reason = layout.stop_reason(row) or layout.COMPLETED
        if reason != layout.DIVERGED:  # a diverged model leaves nothing worth keeping
            from gansweep.analysis.metrics import default_n

            store.write_array(key, layout.output_file(trainer.OUTPUT),
                              trainer.output(default_n(trainer.data)))
        final = row if control.metric_2 is None else {**row, **control.objectives(row)}
        store.write_result(key, reason, trainer.step, control.objective(row), final, trial_id,
                           resumed_from_step=resumed_from, node_id=_node_id())
        # Resuming reads the trial store (keyed by configuration, so it survives Tune
        # re-creating trials under new ids); the Tune checkpoint, reported once at the end,
        # only points Ray's Result.checkpoint at the configuration's entry there.
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "pointer.json"), "w") as f:
                json.dump({"store": store.path(key), "step": trainer.step}, f)
            tune.report(as_report(row, reason), checkpoint=tune.Checkpoint.from_directory(tmp))

    def on_report(row: dict) -> bool:
        row["collapsed"] = detector.update(row)
        if control.figures and _figure_due(control, trainer.step, row):
            _figure(store, key, trainer)  # before the row: a driver that sees it finds it
        store.write_torch(key, layout.STATE, {"trainer": trainer.state_dict(),
                                              "history": history,
                                              "detector": detector.state_dict()})
        store.write(key, layout.METRICS, layout.metrics_csv(history).encode())
        stop = layout.stop_reason(row) is not None
        if stop or trainer.step >= control.steps:
            finish(row)
        else:
            tune.report(as_report(row, layout.RUNNING))
        return stop

    last_stop = layout.stop_reason(history[-1]) if history else None
    if revived and last_stop == layout.COLLAPSED:
        last_stop = None  # the pause it revives from
    if history and (trainer.step >= control.steps or last_stop):
        # Killed after its final checkpoint but before its result was written.
        finish(history[-1])
        return
    train_loop(trainer, control.steps, control.report_every, control.score_every, history,
               on_report, required=control.metrics, evaluator=evaluator, gpus=control.gpus)


def _figure_due(control: TrialControl, step: int, row: dict) -> bool:
    """At each full score (every score_every steps, and the run's last report) that left a
    model worth drawing."""
    if row.get("diverged"):
        return False
    last = step >= control.steps or layout.stop_reason(row) is not None
    return last or bool(control.score_every and step % control.score_every == 0)


def _figure(store: TrialStore, key: str, trainer) -> None:
    """The run's output drawn now (samples or its map, analysis/plots.py), into its store
    entry; the driver logs it to the trackers. A figure is not worth a trial: a failure to
    draw is said and training goes on."""
    from pathlib import Path

    from gansweep.analysis import plots
    from gansweep.analysis.metrics import default_n

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = plots.run_figure(f"run {key}, step {trainer.step}", trainer.OUTPUT,
                                    trainer.output(default_n(trainer.data)), trainer.data,
                                    Path(tmp) / "figure.png")
            store.write(key, layout.figure_file(trainer.step), path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - matplotlib and the store raise many kinds
        print(f"[gansweep] run {key}: no figure at step {trainer.step} ({exc})",
              file=sys.stderr)


def _load_state(store: TrialStore, key: str) -> dict | None:
    """The configuration's checkpoint; an unreadable one -- torn, foreign, or a planted pickle
    that would run code, which weights-only loading refuses (layout.load_checkpoint) -- is
    moved aside (kept, never overwritten) and the configuration trains again from step 0."""
    try:
        saved = store.read_torch(key, layout.STATE)
        if saved is not None and not (isinstance(saved, dict)
                                      and {"trainer", "history", "detector"} <= set(saved)):
            raise ValueError("not a trial checkpoint: it lacks trainer, history or detector")
        return saved
    except Exception as exc:  # a torn or foreign file: torch raises many kinds
        note = store.damaged(key, layout.STATE, str(exc))
        print(f"[gansweep] checkpoint {store.path(key, layout.STATE)} is unreadable ({exc}); "
              f"kept as {note['kept_as']}, training this configuration from step 0",
              file=sys.stderr)
        return None


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _node_id() -> str | None:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def _gpu_ids() -> list[str]:
    """The GPUs Ray assigned this trial (what its CUDA_VISIBLE_DEVICES names), kept beside the
    device the trainer chose so a sweep shows how trials were packed onto GPUs."""
    import ray

    return [str(i) for i in ray.get_gpu_ids()] if ray.is_initialized() else []


def tune_trainable(control: TrialControl, resources: dict[str, Any]):
    """The trainable as Tune takes it: the control settings bound, resources per trial."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(trainable, control=control),
                               dict(resources))
