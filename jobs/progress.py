"""One line of progress while a sweep runs: trials running/done/stopped and the best so far."""
from __future__ import annotations

import math
import time

from ray.tune import Callback

from analysis import layout
from analysis.vocabulary import better


class Progress(Callback):
    def __init__(self, metric: str, mode: str, total: int, every_s: float = 15.0, log=print):
        self.metric, self.mode, self.total = metric, mode, total
        self.every_s, self.log = every_s, log
        self.best: float | None = None
        self.stopped: dict[str, int] = {}
        self.done = 0
        self.last = 0.0

    def _better(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self.best is None or better(self.metric, value, self.best)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if self._better(result.get("objective")):
            self.best = result["objective"]
        if time.monotonic() - self.last > self.every_s:
            self._line(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        reason = result.get("stop_reason", layout.COMPLETED)
        if reason == layout.RUNNING:  # stopped by the scheduler before its last step
            reason = layout.ASHA
        self.stopped[reason] = self.stopped.get(reason, 0) + 1
        self.done += 1
        self._line(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.stopped[layout.FAILED] = self.stopped.get(layout.FAILED, 0) + 1
        self.done += 1
        self._line(trials)

    def _line(self, trials) -> None:
        self.last = time.monotonic()
        running = sum(t.status == "RUNNING" for t in trials)
        ends = ", ".join(f"{n} {r}" for r, n in sorted(self.stopped.items())) or "none yet"
        best = "—" if self.best is None else f"{self.best:.4g}"
        self.log(f"[gansweep] trials: {running} running, {self.done}/{self.total} finished "
                 f"({ends}); best {self.metric} {best}")


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
