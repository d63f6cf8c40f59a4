"""A research group's own feature network (`features: my_lab.eval:features` in a spec, or a
name its package registers under `gansweep.features`): what FID, precision / recall, density /
coverage and the collapse signal measure in, in place of the dataset's built-in evaluator
(analysis/evaluator.py), for data where the group has a better classifier.

The reference points at a callable that maps a batch of samples, as the trainer makes them
((N, D) vectors or (N, C, H, W) images in [-1, 1]), to (N, F) features: a function of a numpy
array, a torch module (called on a tensor, without gradients), or a class built with no
arguments into either.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gansweep.trainers import plugins
from gansweep.trainers.errors import ConfigError

GROUP = "gansweep.features"
BATCH = 256


class UserFeatures:
    """The evaluator interface (`embed`, `features`, `n_classes`) over the group's callable."""

    kind = "user"
    n_classes = None

    def __init__(self, ref: str, fn: Any):
        self.ref = ref
        self.fn = fn() if isinstance(fn, type) else fn
        if not callable(self.fn):
            raise ConfigError(f"features: {ref} is not callable; point at a function or a "
                              "torch module that maps a batch of samples to (N, F) features")
        if isinstance(self.fn, torch.nn.Module):
            self.fn.eval()

    def describe(self) -> str:
        return f"the group's own features ({self.ref})"

    @torch.no_grad()
    def embed(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        module = isinstance(self.fn, torch.nn.Module)
        out = []
        for lo in range(0, len(x), BATCH):
            xb = np.ascontiguousarray(x[lo:lo + BATCH], dtype=np.float32)
            f = self.fn(torch.from_numpy(xb) if module else xb)
            f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
            if f.ndim != 2 or len(f) != len(xb) or not np.isfinite(f).all():
                raise ConfigError(f"features: {self.ref} returned shape {f.shape} for {len(xb)} "
                                  "samples; it must return finite (N, F) features")
            out.append(f.astype(np.float64))
        return (np.concatenate(out) if out else np.zeros((0, 1))), None

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.embed(x)[0]


def load(ref: str) -> UserFeatures:
    return UserFeatures(ref, plugins.load(ref, "features", GROUP))


def check(ref: str, data) -> UserFeatures:
    """Load the features and run them once on real samples: a network that cannot take this
    data is refused before any trial starts."""
    feats = load(ref)
    feats.features(data.held_out[:8])
    return feats
