"""Trainer names a user types, mapped to their classes (imported lazily: torch is heavy), and
the one way every entry point builds a trainer from a name, a dataset and overrides.

Adding a family: its own file (a `base.Trainer` with its HPARAMS, OUTPUT and verbs) and one
line here; nothing else names it.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import resolve

TRAINERS = {
    "dcgan": ("gansweep.trainers.dcgan", "DCGAN"),
    "wgan": ("gansweep.trainers.wgan", "WGAN"),
    "wgan-gp": ("gansweep.trainers.wgan_gp", "WGANGP"),
    "gan": ("gansweep.trainers.gan", "MLPGAN"),
    "som": ("gansweep.trainers.som", "SOM"),
}


def get_trainer(name: str):
    if name not in TRAINERS:
        raise ConfigError(f"unknown trainer {name!r}: use one of {', '.join(TRAINERS)}")
    module, cls = TRAINERS[name]
    return getattr(importlib.import_module(module), cls)


def resolve_config(trainer_name: str, dataset: str | dict, overrides: dict[str, Any],
                   steps: int | None = None) -> dict[str, Any]:
    """The full configuration a run trains with (what a trial's key is computed from).

    A trainer whose schedule needs the run's length (the SOM's `epochs`) gets `steps` unless
    the configuration sets it; an image size given with the dataset is the trainer's too.
    """
    cls = get_trainer(trainer_name)
    overrides = dict(overrides)
    if isinstance(dataset, dict) and "image_size" in dataset and "image_size" in cls.HPARAMS:
        overrides.setdefault("image_size", dataset["image_size"])
    if steps is not None and "epochs" in cls.HPARAMS:
        overrides.setdefault("epochs", steps)
    return resolve(cls.HPARAMS, overrides, f"trainer {trainer_name}")


def build(trainer_name: str, dataset: str | dict, overrides: dict[str, Any], seed: int = 0,
          device: str | None = None, steps: int | None = None,
          loader: Callable | None = None):
    """Resolve the configuration, load the data at the trainer's image size, build the trainer
    on `device` (default: CUDA when a GPU is visible, else CPU)."""
    from gansweep.trainers.base import pick_device
    from gansweep.trainers.data import load_dataset

    config = resolve_config(trainer_name, dataset, overrides, steps)
    data = (loader or load_dataset)(dataset, image_size=config.get("image_size"))
    return get_trainer(trainer_name)(config, data, pick_device(device), seed)
