"""Weights & Biases: one W&B run per trial-store key, grouped under the sweep's name.

W&B offline runs cannot be asked what they hold, so what was logged is kept in the sweep's
ledger (jobs/tracking/ledger.py): the last step handed to W&B, whether the end was logged,
which figures. A run's W&B id is derived from the sweep and the key, and every driver opens it
with `resume="allow"`, so a resumed sweep continues the same W&B run (offline: a new
offline-run directory with the same id, which `wandb sync` appends to the same run).

A run is kept open while its trial trains (opening one costs W&B seconds) and finished when
its result is logged or the driver run ends. The ledger is written after each sync of a key
(usually one report's row): a hard kill of the driver between W&B taking that row and the
ledger being written may hand it to W&B again in the next driver run (online, W&B ignores a
step lower than the resumed run's; offline, both offline-run directories then hold it).
"""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from gansweep.analysis.layout import TrialStore
from gansweep.jobs.tracking.view import RunView


def run_id(sweep_id: str, key: str) -> str:
    """The W&B run id of a key: the same in every driver run of the sweep (W&B ids are at
    most 64 of [a-z0-9_-])."""
    return "gs-" + hashlib.sha1(f"{sweep_id}/{key}".encode()).hexdigest()[:24]


class WandbTracker:
    name = "wandb"

    def __init__(self, cfg: dict, sweep: dict):
        self.project, self.entity = cfg["project"], cfg.get("entity")
        self.mode = cfg.get("mode")  # None: W&B decides (WANDB_MODE, else online)
        self.sweep = sweep
        self.runs: dict[str, object] = {}  # key -> open wandb Run
        self.tmp: tempfile.TemporaryDirectory | None = None

    @property
    def identity(self) -> str:  # offline runs are synced to the same project later
        return f"wandb {self.entity or '-'}/{self.project}"

    def open(self) -> None:
        import wandb  # noqa: F401 - a missing or broken install says so here, once

        self.tmp = tempfile.TemporaryDirectory(prefix="gansweep-wandb-")

    def _run(self, v: RunView):
        import wandb

        run = self.runs.get(v.key)
        if run is None:
            config = dict(v.record.config) if v.record is not None else {}
            if v.record is not None:
                config.update(seed=v.record.seed, steps=v.record.steps,
                              trainer=v.record.trainer, dataset=v.record.dataset)
            config.update(key=v.key, config_key=v.config_key, sweep=self.sweep["name"])
            run = wandb.init(
                project=self.project, entity=self.entity, mode=self.mode,
                id=run_id(self.sweep["id"], v.key), resume="allow", name=v.name,
                group=self.sweep["name"], job_type="run", config=config,
                allow_val_change=True, reinit="create_new",
                settings=wandb.Settings(console="off", save_code=False, disable_git=True,
                                        x_disable_stats=True, x_disable_meta=True,
                                        init_timeout=30, silent=True))
            self.runs[v.key] = run
        return run

    def sync(self, v: RunView, entry: dict, store: TrialStore) -> tuple[dict, bool]:
        """Hand W&B what the ledger's entry says it lacks. Returns the new entry and whether
        anything was logged."""
        import wandb

        logged = int(entry.get("step", -1))
        figures = set(entry.get("figures") or [])
        rows = [r for r in v.rows if r["step"] > logged]
        new_figures = [(s, n) for s, n in v.figures if n not in figures]
        r = v.result
        ends = r is not None and entry.get("finished") != r.finished
        retrained = v.retrained and entry.get("retrained") != v.retrained
        if not (rows or new_figures or ends or retrained):
            return entry, False
        run = self._run(v)
        by_step = {s: n for s, n in new_figures}
        for row in rows:
            data = {k: x for k, x in row.items() if k != "step"}
            name = by_step.pop(row["step"], None)
            if name is not None and (img := self._image(store, v.key, name)) is not None:
                data["figure"] = wandb.Image(img)
                figures.add(name)
            run.log(data, step=row["step"])
            logged = row["step"]
        for step, name in sorted(by_step.items()):  # a figure without its row (not expected)
            if step > logged and (img := self._image(store, v.key, name)) is not None:
                run.log({"figure": wandb.Image(img)}, step=step)
                logged = step
            figures.add(name)
        entry = {**entry, "step": logged, "figures": sorted(figures)}
        if retrained:
            run.summary["gansweep.retrained_from_step_0"] = v.retrained
            entry["retrained"] = v.retrained
        if ends:
            run.summary.update({**{f"final/{k}": x for k, x in v.final().items()},
                                "stop_reason": r.stop_reason, "stop_step": r.stop_step,
                                "objective": str(r.objective)})
            run.finish(exit_code=1 if r.stop_reason == "failed" else 0)
            del self.runs[v.key]
            entry["finished"] = r.finished
        return entry, True

    def _image(self, store: TrialStore, key: str, name: str) -> str | None:
        """The figure as a file W&B copies when it is logged (kept until close)."""
        data = store.read(key, name)
        if data is None:
            return None
        path = Path(self.tmp.name) / f"{key}-{Path(name).name}"
        path.write_bytes(data)
        return str(path)

    def close(self) -> None:
        """Finish the runs still open (their trials were interrupted or go on next time)."""
        for key in list(self.runs):
            self.runs.pop(key).finish()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None
