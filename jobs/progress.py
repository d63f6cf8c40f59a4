"""One line of progress while a sweep runs: trials running/done/stopped and the best so far."""
from __future__ import annotations

import dataclasses
import math
import time

from ray.tune import Callback

from gansweep.analysis import layout
from gansweep.analysis.ranking import better
from gansweep.analysis.records import SweepMeta


class Progress(Callback):
    """At most one line every `every_s` seconds (and one at the end): counts kept as trials
    start and end, so a line costs the same at the ten-thousandth run as at the first."""

    def __init__(self, metric: str, mode: str, every_s: float = 15.0, log=print):
        self.metric, self.mode = metric, mode
        self.every_s, self.log = every_s, log
        self.best: float | None = None
        self.ended: dict[str, int] = {}
        self.started = 0
        self.last = 0.0

    def _better(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self.best is None or better(value, self.best, self.mode)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.started += 1

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(layout.DAMAGED_FILES):
            for name in result[layout.DAMAGED_FILES].split(","):
                self.log(f"[gansweep] damaged: {name} of run {result.get('key')} was "
                         f"unreadable; {layout.AFTER_DAMAGE.get(name, 'it is set aside')}")
        if self._better(result.get("objective")):
            self.best = result["objective"]
        self._maybe_line()

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        reason = result.get("stop_reason", layout.COMPLETED)
        if reason == layout.RUNNING:  # stopped by the scheduler before its last step
            reason = layout.ASHA
        self.ended[reason] = self.ended.get(reason, 0) + 1
        self._maybe_line()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.ended[layout.FAILED] = self.ended.get(layout.FAILED, 0) + 1
        self._maybe_line()

    def on_experiment_end(self, trials, **info):
        self._line()

    def _maybe_line(self) -> None:
        if time.monotonic() - self.last > self.every_s:
            self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        done = sum(self.ended.values())
        ends = ", ".join(f"{n} {r}" for r, n in sorted(self.ended.items())) or "none yet"
        best = "—" if self.best is None else f"{self.best:.4g}"
        self.log(f"[gansweep] runs: {max(0, self.started - done)} running, {done} ended "
                 f"({ends}); best single-run {self.metric} {best}")


class RunClock(Callback):
    """Keeps this driver run's record in sweep.json: its last-seen time, so an hour budget
    counts the time of runs that were killed too (up to `every_s` of each is lost), and what
    each node that trained a run had (a trial's first report says: jobs/trial.py)."""

    def __init__(self, root, meta: SweepMeta, every_s: float = 15.0):
        self.root, self.meta, self.every_s = root, meta, every_s
        self.last = time.monotonic()

    def _tick(self, force: bool = False) -> None:
        if force or time.monotonic() - self.last > self.every_s:
            self.last = time.monotonic()
            runs = self.meta.runs
            runs[-1] = dataclasses.replace(runs[-1], seen=time.time())
            layout.write_meta(self.root, self.meta)

    def _node(self, text: str) -> bool:
        """Records a node's versions and devices; True when they are news to this run."""
        import json

        try:
            info = json.loads(text)
        except ValueError:
            return False
        node = str(info.pop("node_id", None) or info.get("host"))
        run = self.meta.runs[-1]
        known = (run.nodes or {}).get(node) or {}
        # Trials on one node see different devices (a GPU each, or none): their union
        info["devices"] = sorted({*known.get("devices", []), *info.get("devices", [])})
        if known == info:
            return False
        self.meta.runs[-1] = dataclasses.replace(run, nodes={**(run.nodes or {}), node: info})
        return True

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from gansweep.jobs.trial import NODE_INFO

        self._tick(force=bool(result.get(NODE_INFO)) and self._node(result[NODE_INFO]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._tick()

    def on_experiment_end(self, trials, **info):
        self._tick(force=True)


def tensorboard_logger():
    """Tune's TensorBoard logger, minus the non-finite values (a diverged run's NaN losses, the
    deliberate inf objective of a collapsed one) that tensorboardX warns about on every write."""
    from ray.tune.logger import TBXLoggerCallback

    class FiniteTBXLogger(TBXLoggerCallback):
        def log_trial_result(self, iteration, trial, result):
            clean = {k: v for k, v in result.items()
                     if not (isinstance(v, float) and not math.isfinite(v))}
            super().log_trial_result(iteration, trial, clean)

    return FiniteTBXLogger()


SUMMARY_EVERY_S = 30.0  # how often summary.json takes in the runs ended since its last write


class Summarize(Callback):
    """Keeps SWEEP_DIR/summary.json (analysis/layout.py): the ended runs' digests, so a reader
    of a ten-thousand-run sweep reads one file. Written every SUMMARY_EVERY_S and at the end; runs
    ended since the last write are read from their own files by readers meanwhile."""

    def __init__(self, root, control):
        from gansweep.analysis.summary import refresh_summary

        self.root, self.control, self.every_s = root, control, SUMMARY_EVERY_S
        self.summary = refresh_summary(root)  # runs a killed driver ended are caught up here
        self.pending: set[str] = set()
        self.last = time.monotonic()

    def _ended(self, trial) -> None:
        key = self.control.key_of(trial)
        if key is None:
            return
        self.pending.add(key)
        if time.monotonic() - self.last > self.every_s:
            self.flush()

    def flush(self) -> None:
        from gansweep.analysis.summary import refresh_summary

        self.last = time.monotonic()
        if self.pending:
            refresh_summary(self.root, self.summary, keys=sorted(self.pending))
            self.pending.clear()

    def on_trial_start(self, iteration, trials, trial, **info):
        from gansweep.analysis.summary import reopen_in_summary
        from gansweep.jobs.trial import REVIVE

        if (trial.config or {}).get(REVIVE):
            key = self.control.key_of(trial)
            if key is not None:
                reopen_in_summary(self.root, self.summary, key)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_experiment_end(self, trials, **info):
        self.flush()
