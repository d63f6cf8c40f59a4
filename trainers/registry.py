"""Trainer names a user types, mapped to their classes (imported lazily: torch is heavy)."""
from __future__ import annotations

import importlib

from trainers.errors import ConfigError

TRAINERS = {
    "dcgan": ("trainers.dcgan", "DCGAN"),
    "wgan": ("trainers.wgan", "WGAN"),
    "wgan-gp": ("trainers.wgan_gp", "WGANGP"),
    "gan": ("trainers.gan", "MLPGAN"),
    "som": ("trainers.som", "SOM"),
}


def get_trainer(name: str):
    if name not in TRAINERS:
        raise ConfigError(f"unknown trainer {name!r}: use one of {', '.join(TRAINERS)}")
    module, cls = TRAINERS[name]
    return getattr(importlib.import_module(module), cls)
