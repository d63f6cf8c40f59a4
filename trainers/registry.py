"""Trainer names a user types, mapped to their classes (imported lazily: torch is heavy), and
the one way every entry point builds a trainer from a name, a dataset and overrides.

Adding a built-in family: its own file (a `base.Trainer` with its HPARAMS, OUTPUT and verbs)
and one line here; nothing else names it. A research group's own trainer needs no line here:
a spec names it as `module:Class`, or its installed package registers a name under the
`gansweep.trainers` entry-point group (trainers/plugins.py); either is checked against the
contract (trainers/contract.py) before it is used.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from gansweep.trainers import contract, plugins
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import resolve

TRAINERS = {
    "dcgan": ("gansweep.trainers.dcgan", "DCGAN"),
    "wgan": ("gansweep.trainers.wgan", "WGAN"),
    "wgan-gp": ("gansweep.trainers.wgan_gp", "WGANGP"),
    "gan": ("gansweep.trainers.gan", "MLPGAN"),
    "som": ("gansweep.trainers.som", "SOM"),
}
GROUP = "gansweep.trainers"


def get_trainer(name: str):
    if name in TRAINERS:
        module, cls = TRAINERS[name]
        return getattr(importlib.import_module(module), cls)
    if not isinstance(name, str) or not (plugins.is_reference(name)
                                         or name in plugins.registered(GROUP)):
        raise ConfigError(f"unknown trainer {name!r}: use one of {', '.join(names())}, or "
                          "your own class as module:Class (docs/byo.md)")
    return _plugin(name)


@functools.lru_cache(maxsize=16)
def _plugin(name: str):
    return contract.check(plugins.load(name, "trainer", GROUP), f"trainer {name}")


def names() -> list[str]:
    """Every trainer name this process can use without a module:Class reference."""
    return [*TRAINERS, *plugins.registered(GROUP)]


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
