"""A research group's own feature network (`features: my_lab.eval:features` in a spec, or a
name its package registers under `gansweep.features`): what FID, precision / recall, density /
coverage and the collapse signal measure in, in place of the dataset's built-in evaluator
(analysis/evaluator.py), for data where the group has a better classifier.

The reference points at a callable that maps a batch of samples, as the trainer makes them
((N, D) vectors or (N, C, H, W) images in [-1, 1]), to (N, F) features: a function of a numpy
array, a torch module (called on a tensor, without gradients), or a class built with no
arguments into either.

`features: inception` (or `{inception: PATH}`) is one such network that gansweep brings:
Inception-v3's 2048-d pool features through torch-fidelity, as papers' FID uses (docs/fid.md).
The network itself is in analysis/inception.py. torch is imported only where a network runs,
so the readers (`status`, reports) can name a sweep's feature space without it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gansweep.trainers import plugins
from gansweep.trainers.errors import ConfigError

GROUP = "gansweep.features"
BATCH = 256
INCEPTION = "inception"


class UserFeatures:
    """The evaluator interface (`embed`, `features`, `n_classes`) over the group's callable."""

    kind = "user"
    n_classes = None

    def __init__(self, ref: str, fn: Any, label: str | None = None):
        import torch

        self.ref = ref
        self.label = label or f"the group's own features ({ref})"
        self.fn = fn() if isinstance(fn, type) else fn
        if not callable(self.fn):
            raise ConfigError(f"features: {ref} is not callable; point at a function or a "
                              "torch module that maps a batch of samples to (N, F) features")
        if isinstance(self.fn, torch.nn.Module):
            self.fn.eval()

    def describe(self) -> str:
        return self.label

    def embed(self, x: np.ndarray) -> tuple[np.ndarray, None]:
        import torch

        module = isinstance(self.fn, torch.nn.Module)
        out = []
        for lo in range(0, len(x), BATCH):
            xb = np.ascontiguousarray(x[lo:lo + BATCH], dtype=np.float32)
            with torch.no_grad():
                f = self.fn(torch.from_numpy(xb) if module else xb)
            f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
            if f.ndim != 2 or len(f) != len(xb) or not np.isfinite(f).all():
                raise ConfigError(f"features: {self.ref} returned shape {f.shape} for {len(xb)} "
                                  "samples; it must return finite (N, F) features")
            out.append(f.astype(np.float64))
        return (np.concatenate(out) if out else np.zeros((0, 1))), None

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.embed(x)[0]


def load(ref: Any, device: str = "cpu") -> UserFeatures:
    """The network a spec's `features` names, on `device` (a trial's; used by Inception)."""
    if is_inception(ref):
        from gansweep.analysis import inception

        weights = inception.weights(ref.get(INCEPTION) if isinstance(ref, Mapping) else None)
        return UserFeatures(INCEPTION, inception.Inception(weights, device),
                            label=f"Inception-v3 pool features, 2048-d (torch-fidelity; "
                                  f"weights {weights})")
    return UserFeatures(ref, plugins.load(ref, "features", GROUP))


def check(ref: Any, data) -> UserFeatures:
    """Load the features and run them once on real samples: a network that cannot take this
    data is refused before any trial starts."""
    if is_inception(ref):
        _check_images(data)
    feats = load(ref)
    feats.features(data.held_out[:8])
    return feats


# ---- what a sweep's scores are measured in (read by status and the reports) ---------------

def is_inception(value: Any) -> bool:
    """`features: inception` or `features: {inception: PATH}`."""
    return value == INCEPTION or (isinstance(value, Mapping) and list(value) == [INCEPTION])


def space(value: Any) -> str:
    """What fid, precision/recall, density/coverage of a sweep with `features: value` are
    measured in: numbers in different spaces never compare."""
    if value is None:
        return "gansweep evaluator features; not comparable to papers"
    if is_inception(value):
        return "Inception-v3, torch-fidelity"
    return f"the group's own features, {value}"


def fid_label(value: Any) -> str:
    """`fid (Inception-v3, torch-fidelity)`, `fid (gansweep evaluator features; ...)`."""
    return f"fid ({space(value)})"


# ---- Inception-v3 through torch-fidelity ---------------------------------------------------

def _check_images(data) -> None:
    if data.kind != "image":
        raise ConfigError(
            f"features: inception scores images; dataset {data.name} is {data.kind} data. The "
            "built-in evaluators stay the default for mixtures, digits and the SOM (mixtures "
            "are scored in their own coordinates and modes): leave features out")
    channels = int(data.shape[0])
    if channels not in (1, 3):
        raise ConfigError(f"features: inception takes grey or RGB images; dataset {data.name} "
                          f"has {channels} channels: leave features out")
