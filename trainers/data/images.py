"""Image datasets: scikit-learn's bundled digits, Olivetti faces, Fashion-MNIST.

Images are float32 (N, C, H, W) in [-1, 1]; labels are kept for the evaluator.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from trainers.data import Dataset, split
from trainers.errors import ConfigError

IMAGE_SIZES = (8, 16, 32, 64)


def resize(x: np.ndarray, size: int | None) -> np.ndarray:
    """Bilinear resize of (N, C, H, W) images to size x size (antialiased when shrinking)."""
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    shrink = size < max(x.shape[-2:])
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=shrink)
    return out.clamp_(-1.0, 1.0).numpy()


def check_size(image_size: int | None, name: str) -> None:
    if image_size is not None and image_size not in IMAGE_SIZES:
        raise ConfigError(
            f"image_size={image_size} for dataset {name}: use one of "
            f"{', '.join(map(str, IMAGE_SIZES))}"
        )


def digits(image_size: int | None = None) -> Dataset:
    from sklearn.datasets import load_digits

    check_size(image_size, "digits")
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0) * 2.0 - 1.0  # pixel values 0..16
    x = resize(x[:, None], image_size)
    return split(x, d.target.astype(np.int64), 0.2, "digits", "image",
                 info={"classes": 10})


SOURCES = {"digits": digits}
