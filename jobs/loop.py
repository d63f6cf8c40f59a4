"""The one training loop: train k steps, score, report; used by `gansweep train` and by every
sweep trial alike. What is scored comes from the trainer's contract (its OUTPUT kind and
`output(n)`), how from `analysis.metrics`."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from gansweep.analysis import metrics
from gansweep.analysis.vocabulary import COST_METRICS
from gansweep.trainers.base import Trainer
from gansweep.trainers.errors import ConfigError


def score_model(trainer: Trainer, full: bool, evaluator=None) -> dict[str, float]:
    """Score the trainer's current model against the held-out split (`evaluator`: the image
    feature network to use; by default the dataset's own from the per-machine cache)."""
    output = trainer.output(metrics.default_n(trainer.data))
    return metrics.score_output(trainer.OUTPUT, output, trainer.data, full, evaluator)


def is_diverged(row: dict[str, Any]) -> bool:
    return bool(row.get("diverged")) or any(
        isinstance(v, float) and not math.isfinite(v) for v in row.values()
    )


def costs(step: int, seconds: float, gpus: float = 0.0) -> dict[str, float]:
    """What a run has cost after `seconds` of training and scoring, at `step`."""
    out = {"train_seconds": seconds, "steps_per_second": step / max(seconds, 1e-9)}
    if gpus:
        out["gpu_seconds"] = seconds * gpus
    return out


def train_loop(trainer: Trainer, steps: int, report_every: int, score_every: int | None,
               history: list[dict], on_report: Callable[[dict], bool | None],
               required: tuple[str, ...] = (), evaluator=None,
               gpus: float = 0.0) -> list[dict]:
    """Train to `steps`, appending one row per report to `history`.

    `on_report(row)` persists the row and returns True to stop early. A NaN or infinite loss
    or metric stops the run at once with `diverged` set. Metrics named in `required` (a
    sweep's objective) are in every row: when the cheap pass lacks them, every report scores
    fully (once, not cheap and then full). Every row also says what the run has cost so far
    (analysis/vocabulary.py COST_METRICS): `train_seconds` (`time_s`, cumulative over
    resumes), `steps_per_second` and, with `gpus` (the GPUs one trial holds), `gpu_seconds`;
    they need no scoring, so naming one never makes a report score fully.
    """
    if report_every < 1:
        raise ConfigError("report_every must be at least 1")
    cheap = metrics.cheap_metrics(trainer.data, trainer.OUTPUT)
    every_report_full = bool(set(required) - cheap - COST_METRICS)
    while trainer.step < steps:
        t0 = time.perf_counter()
        losses = trainer.train(min(report_every, steps - trainer.step))
        row: dict[str, Any] = {"step": trainer.step, **losses}
        diverged = is_diverged(row)
        if not diverged:
            last = trainer.step >= steps
            full = last or every_report_full or bool(score_every
                                                      and trainer.step % score_every == 0)
            row.update(score_model(trainer, full, evaluator))
            diverged = is_diverged(row)
        row["diverged"] = diverged
        prev = history[-1]["time_s"] if history else 0.0
        row["time_s"] = prev + time.perf_counter() - t0
        row.update(costs(row["step"], row["time_s"], gpus))
        history.append(row)
        if on_report(row) or diverged:
            break
    return history
