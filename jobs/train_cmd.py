"""`gansweep train TRAINER --dataset NAME --out DIR`: one configuration, no sweep, into a run
directory of its own:

    DIR/config.json        trainer, dataset, seed, effective hyperparameters, data fingerprint
    DIR/metrics.csv        one row per report
    DIR/samples.npy        or weights.npy: what the finished run leaves (the trainer's OUTPUT)
    DIR/checkpoint/state.pt  for --resume
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gansweep.analysis import metrics
from gansweep.analysis.layout import (
    CONFIG,
    METRICS,
    STATE,
    UnsafeCheckpoint,
    metrics_csv,
    output_file,
)
from gansweep.analysis.layout import load_checkpoint as load_checkpoint_bytes
from gansweep.jobs.loop import train_loop
from gansweep.trainers.base import Trainer
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import build

CHECKPOINT = "checkpoint"


def save_checkpoint(trainer: Trainer, history: list[dict], ckpt_dir: Path) -> None:
    """Atomic: a kill mid-write leaves the previous checkpoint intact."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / (STATE + ".tmp")
    torch.save({"trainer": trainer.state_dict(), "history": history}, tmp)
    os.replace(tmp, ckpt_dir / STATE)


def load_checkpoint(ckpt_dir: Path) -> dict[str, Any]:
    path = ckpt_dir / STATE
    if not path.is_file():
        raise ConfigError(f"no checkpoint at {path}: train without --resume to start a new run")
    try:  # weights only: a planted pickle is refused, never run (analysis/layout.py)
        return load_checkpoint_bytes(path.read_bytes(), f"checkpoint {path}")
    except (UnsafeCheckpoint, OSError) as exc:
        raise ConfigError(f"{exc}; start a new run in a new --out directory") from None


def write_metrics_csv(history: list[dict], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(metrics_csv(history))
    os.replace(tmp, path)


def write_output(trainer: Trainer, out: Path) -> Path:
    """What the finished run leaves: samples from the fixed latent batch or a map's weights."""
    path = out / output_file(trainer.OUTPUT)
    np.save(path, trainer.output(metrics.default_n(trainer.data)))
    return path


def train_to_dir(trainer_name: str, dataset: str | dict, overrides: dict[str, Any], steps: int,
                 out: Path, seed: int = 0, report_every: int = 100,
                 score_every: int | None = None, resume: bool = False,
                 device: str | None = None, log: Callable[[str], None] = print) -> list[dict]:
    out = Path(out)
    ckpt_dir = out / CHECKPOINT
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or pick a "
                          "new --out directory")
    if resume:
        saved = load_checkpoint(ckpt_dir)
        config_path = out / CONFIG
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
    (out / CONFIG).write_text(json.dumps(record, indent=2, default=str))
    log(f"{trainer.data.describe()}; training {trainer_name} on {trainer.device} "
        f"from step {trainer.step} to {steps}")

    def on_report(row: dict) -> None:
        save_checkpoint(trainer, history, ckpt_dir)
        write_metrics_csv(history, out / METRICS)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                          if isinstance(v, float) and k != "time_s")
        log(f"step {row['step']}: {shown}")

    train_loop(trainer, steps, report_every, score_every, history, on_report)
    final = write_output(trainer, out)
    log(f"wrote {out / CONFIG}, {out / METRICS}, {final}, {ckpt_dir}/")
    return history


def returned_configuration(sweep_dir: str | Path, log=print) -> dict:
    """What `gansweep train --from SWEEP_DIR` trains: the sweep's trainer, dataset, length and
    its top configuration by the seed-robust ranking, with a seed the sweep never used."""
    from gansweep.analysis.sweeps import load_sweep
    from gansweep.jobs import sweep_dir as sd

    spec, _ = sd.open_existing(sweep_dir)
    sweep = load_sweep(sweep_dir)
    best = sweep.best_configuration()
    if best is None:
        raise ConfigError(f"{sweep_dir} has no configuration whose runs all completed yet; "
                          f"see `gansweep status {sweep_dir}`")
    judged = (f"over seeds {', '.join(map(str, best['seed_list']))}"
              + ("" if best["judged_on_all_seeds"] else
                 f" (judged on {best['seeds']} of {spec.seeds['count']} seeds only)"))
    spread = "" if math.isnan(best["std"]) else f" ± {best['std']:.4g}"
    log(f"[gansweep] training the configuration {sweep_dir} returned: {spec.metric} "
        f"{best['value']:.4g}{spread} {judged} (config {best['key']})")
    from gansweep.jobs.rerun import fresh_seeds

    return {"trainer": spec.trainer, "dataset": spec.dataset, "steps": spec.steps,
            "report_every": spec.report_every, "score_every": spec.score_every,
            "config": dict(sweep.configs[best["key"]]), "seed": fresh_seeds(spec, 1)[0]}
