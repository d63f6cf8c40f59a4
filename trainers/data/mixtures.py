"""Generated mixtures: the PacGAN 2-D ring and grid, and the 1-D toy Gaussian."""
from __future__ import annotations

import numpy as np

from gansweep.trainers.data import Dataset, split

N_TRAIN = 50_000
N_HELD_OUT = 2_500  # the fixed scoring set (VEEGAN/PacGAN score 2500 samples)
DATA_SEED = 7


def mixture(means: np.ndarray, std: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    comp = rng.integers(len(means), size=n)
    x = means[comp] + std * rng.standard_normal((n, means.shape[1]))
    return x.astype(np.float32), comp


def ring8() -> Dataset:
    angles = 2 * np.pi * np.arange(8) / 8
    means = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture_dataset("ring8", means, 0.01)


def grid25() -> Dataset:
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    means = np.array([(a, b) for a in g for b in g])
    return _mixture_dataset("grid25", means, 0.05)


def gauss1d() -> Dataset:
    return _mixture_dataset("gauss1d", np.array([[4.0]]), 0.5)


def _mixture_dataset(name: str, means: np.ndarray, std: float) -> Dataset:
    x, comp = mixture(means, std, N_TRAIN + N_HELD_OUT, DATA_SEED)
    data = split(x, comp, N_HELD_OUT, name, "vector", modes=means.astype(np.float32),
                 mode_std=std)
    return data


SOURCES = {"ring8": ring8, "grid25": grid25, "gauss1d": gauss1d}
