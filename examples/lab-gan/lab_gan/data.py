"""The lab's data: a two-armed spiral in 2-D, made here (nothing to download)."""
from __future__ import annotations

import numpy as np


def spiral(n: int = 4000, noise: float = 0.03, seed: int = 7) -> np.ndarray:
    """`n` points on two interleaved arms, scaled to about [-1, 1], with Gaussian noise."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    arm = rng.integers(0, 2, n) * np.pi
    x = np.stack([t * np.cos(t + arm), t * np.sin(t + arm)], axis=1) / (3 * np.pi)
    return (x + noise * rng.standard_normal(x.shape)).astype(np.float32)
