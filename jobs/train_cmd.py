"""`gansweep train TRAINER --dataset NAME --out DIR`: one configuration, no sweep, into a run
directory of its own:

    DIR/config.json        trainer, dataset, seed, effective hyperparameters, data fingerprint
    DIR/metrics.csv        one row per report
    DIR/samples.npy        or weights.npy: what the finished run leaves (the trainer's OUTPUT)
    DIR/checkpoint/state.pt  for --resume
"""
from __future__ import annotations

import io
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
    write_file,
)
from gansweep.analysis.layout import load_checkpoint as load_checkpoint_bytes
from gansweep.analysis.records import RunRecord
from gansweep.analysis.vocabulary import COST_METRICS
from gansweep.jobs.loop import train_loop
from gansweep.trainers.base import Trainer
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import build

CHECKPOINT = "checkpoint"
QUIET = {"time_s", *COST_METRICS}  # in metrics.csv, left out of the progress line


def save_checkpoint(trainer: Trainer, history: list[dict], ckpt_dir: Path) -> None:
    """Durable (layout.write_file): a kill or a power cut mid-write leaves the previous
    checkpoint intact."""
    buf = io.BytesIO()
    torch.save({"trainer": trainer.state_dict(), "history": history}, buf)
    write_file(ckpt_dir / STATE, buf.getvalue())


def load_checkpoint(ckpt_dir: Path) -> dict[str, Any]:
    path = ckpt_dir / STATE
    if not path.is_file():
        raise ConfigError(f"--resume: no checkpoint at {path}; train without --resume to start "
                          "a new run")
    try:  # weights only: a planted pickle is refused, never run (analysis/layout.py)
        return load_checkpoint_bytes(path.read_bytes(), f"--out: checkpoint {path}")
    except (UnsafeCheckpoint, OSError) as exc:
        raise ConfigError(f"{exc}; start a new run in a new --out directory") from None


def write_metrics_csv(history: list[dict], path: Path) -> None:
    write_file(path, metrics_csv(history).encode())


def write_output(trainer: Trainer, out: Path) -> Path:
    """What the finished run leaves: samples from the fixed latent batch or a map's weights."""
    path = out / output_file(trainer.OUTPUT)
    np.save(path, trainer.output(metrics.default_n(trainer.data)))
    return path


def check_out(out: Path, resume: bool) -> None:
    """Refuse, before data is loaded or a trainer built, an --out that cannot take the run: a
    file, a run already there (without --resume), a torn run to resume, or a place that cannot
    be written."""
    from gansweep.jobs.sweep_dir import check_writable

    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file of that name exists; give a directory (made "
                          "if missing)")
    if not resume and out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} already holds a run: pass --resume to continue it, or "
                          "pick a new --out directory")
    if resume:  # the checkpoint itself is loaded (or refused as torn) before the build
        if not (out / CHECKPOINT / STATE).is_file():
            raise ConfigError(f"--resume: no checkpoint at {out / CHECKPOINT / STATE}; train "
                              "without --resume to start a new run")
        _run_record(out)
    check_writable(out, "--out")


def _run_record(out: Path) -> RunRecord | None:
    """The run's config.json, or None when a run killed before writing it has none."""
    path = out / CONFIG
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or not {"trainer", "dataset", "seed", "config"} <= set(
                record):
            raise ValueError("not the record gansweep train writes")
    except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ConfigError(f"--out {out}: {CONFIG} is unreadable ({exc}); start a new run in a "
                          "new --out directory") from None
    return RunRecord.from_json(record)


def train_to_dir(trainer_name: str, dataset: str | dict, overrides: dict[str, Any], steps: int,
                 out: Path, seed: int = 0, report_every: int = 100,
                 score_every: int | None = None, resume: bool = False,
                 device: str | None = None, log: Callable[[str], None] = print,
                 features: Any = None) -> list[dict]:
    """`features`: score in the group's own feature network (a sweep's `features`) instead of
    the dataset's built-in evaluator."""
    out = Path(out)
    ckpt_dir = out / CHECKPOINT
    check_out(out, resume)
    if resume:
        saved = load_checkpoint(ckpt_dir)
        record = _run_record(out)
        if record is not None:
            trainer_name, dataset, seed = record.trainer, record.dataset, record.seed
            overrides = {**record.config, **overrides}
    trainer = build(trainer_name, dataset, overrides, seed, device, steps=steps)
    history: list[dict] = []
    if resume:
        trainer.load_state_dict(saved["trainer"])
        history = [r for r in saved["history"] if r["step"] <= trainer.step]
    evaluator = None
    if features:  # loaded before anything is written: missing weights are refused first
        from gansweep.analysis.features import load as load_features

        evaluator = load_features(features, str(trainer.device))
    out.mkdir(parents=True, exist_ok=True)
    record = RunRecord(trainer=trainer_name, dataset=dataset, seed=seed, config=trainer.config,
                       device=str(trainer.device), data=trainer.data.describe(),
                       data_fingerprint=trainer.data.fingerprint)
    write_file(out / CONFIG, json.dumps(record.to_json(), indent=2, default=str).encode())
    log(f"{trainer.data.describe()}; training {trainer_name} on {trainer.device} "
        f"from step {trainer.step} to {steps}")

    def on_report(row: dict) -> None:
        save_checkpoint(trainer, history, ckpt_dir)
        write_metrics_csv(history, out / METRICS)
        shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items()
                          if isinstance(v, float) and k not in QUIET)
        log(f"step {row['step']}: {shown}")

    train_loop(trainer, steps, report_every, score_every, history, on_report,
               evaluator=evaluator)
    final = write_output(trainer, out)
    log(f"wrote {out / CONFIG}, {out / METRICS}, {final}, {ckpt_dir}/")
    return history


def pick_rule(spec, pick: str | None) -> str | None:
    """`--pick RULE` for a sweep with this spec: checked, and `knee` by default for two
    objectives; None for one objective (refused with --pick)."""
    from gansweep.analysis.ranking import pick_rules

    if spec.metric_2 is None:
        if pick is not None:
            raise ConfigError(f"--pick: the sweep optimises one objective ({spec.metric}) and "
                              "returns one best configuration; drop --pick (it chooses a "
                              "point on a two-objective sweep's Pareto front)")
        return None
    rules = pick_rules(spec.metrics)
    if pick is None:
        return "knee"
    if pick not in rules:
        raise ConfigError(f"--pick: {pick!r} is not a rule for this sweep; use "
                          f"{' or '.join(rules)}")
    return pick


def returned_configuration(sweep_dir: str | Path, log=print, pick: str | None = None) -> dict:
    """What `gansweep train --from SWEEP_DIR` trains: the sweep's trainer, dataset, length and
    its top configuration by the seed-robust ranking, with a seed the sweep never used. A
    two-objective sweep's: the point of its Pareto front `pick` chooses (default the knee:
    docs/pareto.md)."""
    from gansweep.analysis.sweeps import load_sweep
    from gansweep.jobs import sweep_dir as sd

    spec, _ = sd.open_existing(sweep_dir)
    rule = pick_rule(spec, pick)
    sweep = load_sweep(sweep_dir)
    best = sweep.pick(rule)
    if best is None:
        raise ConfigError(f"{sweep_dir} has no configuration whose runs all completed yet; "
                          f"see `gansweep status {sweep_dir}`")
    judged = (f"over seeds {', '.join(map(str, best['seed_list']))}"
              + ("" if best["judged_on_all_seeds"] else
                 f" (judged on {best['seeds']} of {spec.seeds['count']} seeds only)"))
    spread = "" if math.isnan(best["std"]) else f" ± {best['std']:.4g}"
    second = ("" if rule is None else
              f", {spec.metric_2} {best['value_2']:.4g} (the Pareto front's {rule})")
    log(f"[gansweep] training the configuration {sweep_dir} returned: {spec.metric} "
        f"{best['value']:.4g}{spread}{second} {judged} (config {best['key']})")
    from gansweep.jobs.rerun import fresh_seeds

    return {"trainer": spec.trainer, "dataset": spec.dataset, "steps": spec.steps,
            "report_every": spec.report_every, "score_every": spec.score_every,
            "config": dict(sweep.configs[best["key"]]), "seed": fresh_seeds(spec, 1)[0],
            "features": spec.features}


def run(trainer: str | None, dataset: Any, out: Path, steps: int | None = None,
        overrides: dict[str, Any] | None = None, sets: list[str] = (), seed: int | None = None,
        from_sweep: str | Path | None = None, report_every: int | None = None,
        score_every: int | None = None, resume: bool = False, device: str | None = None,
        log: Callable[[str], None] = print, pick: str | None = None) -> list[dict]:
    """`gansweep train` and `gansweep.train`: one configuration, or (`from_sweep`) the one a
    sweep returns on a seed it never used (`pick`: which point of a two-objective sweep's
    Pareto front, `knee` or `best:METRIC`). `overrides` are typed hyperparameters (Python),
    `sets` KEY=VALUE strings (--set); both are checked against the trainer's schema."""
    from gansweep.jobs.spec import SEED_LIMIT
    from gansweep.trainers.hparams import parse_sets, resolve
    from gansweep.trainers.registry import get_trainer

    # What the arguments alone can tell is checked before a sweep is read, data loaded or
    # anything made
    for flag, value in (("--steps", steps), ("--report-every", report_every),
                        ("--score-every", score_every)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value})")
    if seed is not None and not 0 <= seed <= SEED_LIMIT:
        raise ConfigError(f"--seed {seed}: write a whole number from 0 to {SEED_LIMIT} "
                          "(numpy's range)")
    if device is not None:
        check_device(device)
    if from_sweep:
        from gansweep.jobs.cli import check_sweep_arg

        check_sweep_arg(str(from_sweep), "--from")
        if pick is not None:  # before --out is made
            from gansweep.jobs import sweep_dir as sd

            pick_rule(sd.open_existing(from_sweep)[0], pick)
    elif pick is not None:
        raise ConfigError("--pick chooses a point on the Pareto front of a sweep: give it with "
                          "--from SWEEP_DIR")
    out = Path(out)
    check_out(out, resume)
    base: dict = {}
    features = None
    if from_sweep:
        if trainer or dataset:
            raise ConfigError("--from trains the sweep's trainer on its dataset: drop the "
                              "trainer and --dataset (use --set to change a hyperparameter)")
        got = returned_configuration(from_sweep, log=log, pick=pick)
        trainer, dataset, base = got["trainer"], got["dataset"], got["config"]
        features = got["features"]
        steps = got["steps"] if steps is None else steps
        seed = got["seed"] if seed is None else seed
        report_every = got["report_every"] if report_every is None else report_every
        score_every = got["score_every"] if score_every is None else score_every
    elif not trainer or not dataset:
        raise ConfigError("give a trainer and --dataset (e.g. gansweep train gan --dataset "
                          "ring8 --out runs/r), or --from SWEEP_DIR")
    cls = get_trainer(trainer)
    where = f"trainer {trainer}"
    typed = resolve(cls.HPARAMS, dict(overrides or {}), where) if overrides else {}
    overrides = {**base, **{k: typed[k] for k in overrides or {}},
                 **parse_sets(cls.HPARAMS, list(sets), where)}
    steps = 1000 if steps is None else steps
    seed, every = 0 if seed is None else seed, 100 if report_every is None else report_every
    if score_every is not None and score_every % every:
        raise ConfigError(f"--score-every {score_every} is not a multiple of --report-every "
                          f"({every}); scores are taken at reports")
    return train_to_dir(trainer, dataset, overrides, steps, out, seed=seed,
                        report_every=every, score_every=score_every, resume=resume,
                        device=device, log=log, features=features)


def check_device(device: str) -> None:
    """`--device`: cpu, or a CUDA device torch can use here (else torch fails mid-build)."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: write cpu, cuda or cuda:N")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: torch sees no CUDA device on this machine; use "
                          "--device cpu or leave --device out")
