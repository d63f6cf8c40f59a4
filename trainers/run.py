"""The one training loop: train k steps, score, report, checkpoint; used by `gansweep train`
and by the Ray Tune entry point alike."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from analysis import metrics
from trainers.base import Trainer, pick_device
from trainers.data import Dataset, load_dataset
from trainers.errors import ConfigError
from trainers.hparams import resolve
from trainers.registry import get_trainer

STATE_FILE = "state.pt"


def build(trainer_name: str, dataset: str | dict, overrides: dict[str, Any], seed: int = 0,
          device: str | None = None, steps: int | None = None,
          loader: Callable[..., Dataset] = load_dataset) -> Trainer:
    """Resolve the configuration, load the data at the trainer's image size, build the trainer.

    A trainer whose schedule needs the run's length (the SOM's `epochs`) gets `steps` unless
    the configuration sets it.
    """
    config = resolve_config(trainer_name, dataset, overrides, steps)
    data = loader(dataset, image_size=config.get("image_size"))
    return get_trainer(trainer_name)(config, data, pick_device(device), seed)


def resolve_config(trainer_name: str, dataset: str | dict, overrides: dict[str, Any],
                   steps: int | None = None) -> dict[str, Any]:
    """The full configuration a run trains with (what a trial's key is computed from)."""
    cls = get_trainer(trainer_name)
    overrides = dict(overrides)
    if isinstance(dataset, dict) and "image_size" in dataset and "image_size" in cls.HPARAMS:
        overrides.setdefault("image_size", dataset["image_size"])
    if steps is not None and "epochs" in cls.HPARAMS:
        overrides.setdefault("epochs", steps)
    return resolve(cls.HPARAMS, overrides, f"trainer {trainer_name}")


def eval_samples(trainer: Trainer) -> np.ndarray:
    """The fixed-seed batch every score and the final samples file are made of, drawn once per
    trainer step: the final outputs reuse the last report's batch instead of a second forward
    pass (a restored trainer starts without one)."""
    cached = trainer.scored_batch
    if cached is None or cached[0] != trainer.step:
        batch = trainer.sample(metrics.default_n(trainer.data)).float().cpu().numpy()
        trainer.scored_batch = cached = (trainer.step, batch)
    return cached[1]


def evaluate(trainer: Trainer, full: bool) -> dict[str, float]:
    """Score the trainer's current model against the held-out split."""
    data: Dataset = trainer.data
    if trainer.name == "som":
        return metrics.som_scores(trainer.weights(), data.held_out.reshape(len(data.held_out), -1))
    samples = eval_samples(trainer)
    if not np.isfinite(samples).all():
        return {"diverged": True}
    return metrics.score(samples, data, full=full)


def is_diverged(row: dict[str, Any]) -> bool:
    return bool(row.get("diverged")) or any(
        isinstance(v, float) and not math.isfinite(v) for v in row.values()
    )


def train_loop(trainer: Trainer, steps: int, report_every: int, score_every: int | None,
               history: list[dict], on_report: Callable[[dict], bool | None],
               required: tuple[str, ...] = ()) -> list[dict]:
    """Train to `steps`, appending one row per report to `history`.

    `on_report(row)` persists the row and returns True to stop early. A NaN or infinite loss
    or metric stops the run at once with `diverged` set. Metrics named in `required` (a
    sweep's objective) are in every row: when the cheap pass lacks them, every report scores
    fully (once, not cheap and then full).
    """
    if report_every < 1:
        raise ConfigError("report_every must be at least 1")
    cheap = metrics.SOM_METRICS if trainer.name == "som" else metrics.cheap_metrics(trainer.data)
    every_report_full = bool(set(required) - cheap)
    while trainer.step < steps:
        t0 = time.perf_counter()
        losses = trainer.train(min(report_every, steps - trainer.step))
        row: dict[str, Any] = {"step": trainer.step, **losses}
        diverged = is_diverged(row)
        if not diverged:
            last = trainer.step >= steps
            full = last or every_report_full or bool(score_every
                                                      and trainer.step % score_every == 0)
            row.update(evaluate(trainer, full))
            diverged = is_diverged(row)
        row["diverged"] = diverged
        prev = history[-1]["time_s"] if history else 0.0
        row["time_s"] = prev + time.perf_counter() - t0
        history.append(row)
        if on_report(row) or diverged:
            break
    return history


# ---- a run directory on disk (`gansweep train --out DIR`) ----------------------------------

def save_checkpoint(trainer: Trainer, history: list[dict], ckpt_dir: Path) -> None:
    """Atomic: a kill mid-write leaves the previous checkpoint intact."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / (STATE_FILE + ".tmp")
    torch.save({"trainer": trainer.state_dict(), "history": history}, tmp)
    os.replace(tmp, ckpt_dir / STATE_FILE)


def load_checkpoint(ckpt_dir: Path) -> dict[str, Any]:
    path = ckpt_dir / STATE_FILE
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: train without --resume to start a new run")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise ConfigError(f"checkpoint {path} is unreadable ({exc}); start a new run") from exc


def metrics_csv(history: list[dict]) -> str:
    """One row per report; columns are the union of keys in first-seen order."""
    keys: list[str] = []
    for row in history:
        keys += [k for k in row if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def write_metrics_csv(history: list[dict], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(metrics_csv(history))
    os.replace(tmp, path)


def final_output(trainer: Trainer) -> tuple[str, np.ndarray]:
    """What a finished run leaves behind, and its file name: final samples (data space) or,
    for a SOM, its weights."""
    if trainer.name == "som":
        return "weights.npy", trainer.weights()
    return "samples.npy", eval_samples(trainer)


def write_outputs(trainer: Trainer, out: Path) -> Path:
    name, array = final_output(trainer)
    np.save(out / name, array)
    return out / name


def train_to_dir(trainer_name: str, dataset: str | dict, overrides: dict[str, Any], steps: int,
                 out: Path, seed: int = 0, report_every: int = 100,
                 score_every: int | None = None, resume: bool = False,
                 device: str | None = None, log: Callable[[str], None] = print) -> list[dict]:
    out = Path(out)
    ckpt_dir = out / "checkpoint"
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or pick a "
                          "new --out directory")
    if resume:
        saved = load_checkpoint(ckpt_dir)
        config_path = out / "config.json"
        if config_path.is_file():
            record = json.loads(config_path.read_text())
            trainer_name, dataset, seed = record["trainer"], record["dataset"], record["seed"]
            overrides = {**record["config"], **overrides}
    trainer = build(trainer_name, dataset, overrides, seed, device, steps=steps)
    history: list[dict] = []
    if resume:
        trainer.load_state_dict(saved["trainer"])
        history = [r for r in saved["history"] if r["step"] <= trainer.step]
    out.mkdir(parents=True, exist_ok=True)
    record = {"trainer": trainer_name, "dataset": dataset, "seed": seed,
              "config": trainer.config, "device": str(trainer.device),
              "data": trainer.data.describe(), "data_fingerprint": trainer.data.fingerprint}
    (out / "config.json").write_text(json.dumps(record, indent=2, default=str))
    log(f"{trainer.data.describe()}; training {trainer_name} on {trainer.device} "
        f"from step {trainer.step} to {steps}")

    def on_report(row: dict) -> None:
        save_checkpoint(trainer, history, ckpt_dir)
        write_metrics_csv(history, out / "metrics.csv")
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                          if isinstance(v, float) and k != "time_s")
        log(f"step {row['step']}: {shown}")

    train_loop(trainer, steps, report_every, score_every, history, on_report)
    final = write_outputs(trainer, out)
    log(f"wrote {out / 'config.json'}, {out / 'metrics.csv'}, {final}, {ckpt_dir}/")
    return history
