"""A user's own data: a .npy/.npz array or a folder of PNG images.

Arrays of shape (N, D) are vector data (any finite values). (N, H, W) and (N, C, H, W) with
C = 1 or 3 and H = W are images, which must already lie in [-1, 1]: gansweep refuses other
ranges rather than guess a rescaling, and warns when every value is in [0, 1] (likely 0..1
pixels that should be mapped with 2 * x - 1). A .npz holds the samples as `x` (or `arr_0`) and
optional integer labels as `y` (or `labels`). PNG folders hold same-size square 8-bit images,
grayscale or colour (mapped from 0..255 to [-1, 1]); they have no labels. 20% of the samples
are held out, as for digits.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gansweep.trainers.data import Dataset, check_finite, split
from gansweep.trainers.data.images import check_size, resize_dataset, subset_option, take_subset
from gansweep.trainers.errors import ConfigError

HELD_OUT = 0.2
MIN_SAMPLES = 5  # fewer leave nothing to hold out
GRAY_MODES = ("1", "L", "LA")
RANGE_TOLERANCE = 1e-4  # float round-off around +-1 is clipped, anything more is refused


def load_path(path: Path, image_size: int | None = None, **options: Any) -> Dataset:
    name = str(path)
    subset = subset_option(name, options)
    if not path.exists():
        raise ConfigError(f"dataset path {path} does not exist: give a .npy or .npz file or a "
                          "folder of PNG images (or a dataset name: ring8, digits, ...)")
    if path.is_dir():
        x, y = load_png_folder(path)
    elif path.suffix.lower() == ".npy":
        x, y = load_npy(path), None
    elif path.suffix.lower() == ".npz":
        x, y = load_npz(path)
    else:
        raise ConfigError(f"dataset path {path}: unsupported file type {path.suffix!r}; save "
                          "the samples with numpy.save (.npy) or numpy.savez (.npz), or give "
                          "a folder of PNG images")
    return from_arrays(x, y, name, image_size, subset)


def from_arrays(x: Any, y: Any, name: str, image_size: int | None = None,
                subset: int | None = None) -> Dataset:
    """Samples (and optional labels) from a file or a user's own loader, checked, split and
    sized like every other source."""
    kind, x = as_samples(np.asarray(x), name)
    if y is not None:
        y = as_labels(y, len(x), name)
    if kind == "image":
        check_size(image_size, name)
    data = take_subset(split(x, y, HELD_OUT, name, kind, info={"source": name}), subset)
    # image_size belongs to image trainers; vector data keeps its dimension.
    return resize_dataset(data, image_size) if kind == "image" else data


def _unreadable(path: Path, exc: Exception) -> ConfigError:
    return ConfigError(f"dataset path {path} is unreadable ({exc}); save it again with "
                       "numpy.save / numpy.savez (plain numeric arrays, no pickled objects)")


def load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _unreadable(path, exc) from exc


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            xkey = next((k for k in ("x", "arr_0") if k in keys), None)
            if xkey is None:
                raise ConfigError(f"dataset path {path} has arrays {keys or 'none'}; store the "
                                  "samples as x (numpy.savez(path, x=samples, y=labels))")
            ykey = next((k for k in ("y", "labels") if k in keys), None)
            return z[xkey], None if ykey is None else z[ykey]
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise _unreadable(path, exc) from exc


def load_png_folder(path: Path) -> tuple[np.ndarray, None]:
    from PIL import Image, UnidentifiedImageError

    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    if not files:
        raise ConfigError(f"dataset folder {path} holds no .png images: put PNG files in it "
                          "(all the same square size), or give a .npy/.npz file")
    images = []
    for f in files:
        try:
            with Image.open(f) as im:
                im.load()
                images.append(im.copy())
        except (OSError, UnidentifiedImageError) as exc:
            raise ConfigError(f"dataset folder {path}: {f.name} is not a readable PNG ({exc}); "
                              "remove or re-save it") from exc
    deep = [(f.name, im.mode) for f, im in zip(files, images) if im.mode.startswith(("I", "F"))]
    if deep:
        raise ConfigError(f"dataset folder {path}: {deep[0][0]} has {deep[0][1]!r} pixels "
                          "(16-bit or float); save the images as 8-bit grayscale or RGB")
    sizes = {im.size for im in images}
    if len(sizes) > 1:
        first = images[0].size
        other = next(f.name for f, im in zip(files, images) if im.size != first)
        raise ConfigError(f"dataset folder {path} mixes image sizes ({files[0].name} is "
                          f"{first[0]}x{first[1]}, {other} is not); resize them all to one "
                          "square size")
    gray = all(im.mode in GRAY_MODES for im in images)
    # One colour image makes the whole set RGB (gray ones repeat); alpha is dropped.
    mode = "L" if gray else "RGB"
    x = np.stack([np.asarray(im.convert(mode)) for im in images])
    x = x[:, None] if gray else x.transpose(0, 3, 1, 2)
    return x.astype(np.float32) / np.float32(127.5) - 1.0, None


def as_samples(x: np.ndarray, name: str) -> tuple[str, np.ndarray]:
    """Decide vector or image data from the shape, and check it."""
    if not np.issubdtype(x.dtype, np.number) and x.dtype != bool:
        raise ConfigError(f"dataset {name} holds {x.dtype} values; save a numeric array")
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(x.shape)
    if x.ndim < 2:
        raise ConfigError(f"dataset {name} has shape {shape}: give one sample per row, "
                          "(N, D) vectors (for 1-D data x.reshape(-1, 1)) or (N, H, W) / "
                          "(N, C, H, W) images")
    if len(x) < MIN_SAMPLES:
        raise ConfigError(f"dataset {name} has {len(x)} samples; give at least {MIN_SAMPLES} "
                          "(20% are held out for scoring)")
    check_finite(x, name)
    if x.ndim == 2:
        return "vector", x
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ConfigError(f"dataset {name} has shape {shape}: use (N, D) vectors or (N, H, W) "
                          "/ (N, C, H, W) images")
    c, h, w = x.shape[1:]
    if c not in (1, 3):
        hint = (" It looks channels-last: use x.transpose(0, 3, 1, 2)."
                if x.shape[-1] in (1, 3) else "")
        raise ConfigError(f"dataset {name} has shape {shape}: images need 1 (grayscale) or 3 "
                          f"(RGB) channels in (N, C, H, W) order.{hint}")
    if h != w:
        raise ConfigError(f"dataset {name} has images of height {h} and width {w}; the "
                          "trainers need square images: crop or pad them to one side")
    return "image", check_range(x, name)


def check_range(x: np.ndarray, name: str) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        hint = (" They look like 0..255 pixels: use x / 127.5 - 1." if lo >= 0 and hi <= 255
                else " Rescale them, e.g. 2 * (x - x.min()) / (x.max() - x.min()) - 1.")
        raise ConfigError(f"dataset {name} has image values in [{lo:g}, {hi:g}]; images must "
                          f"lie in [-1, 1].{hint}")
    if lo >= 0:
        warnings.warn(f"dataset {name}: every image value is in [{lo:g}, {hi:g}]; gansweep "
                      "expects [-1, 1], so if these are 0..1 pixels save 2 * x - 1 instead",
                      stacklevel=2)
    return np.clip(x, -1.0, 1.0)


def as_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    """Class indices 0..K-1, one per sample (the evaluator learns from them)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ConfigError(f"dataset {name}: labels have shape {y.shape} but there are {n} "
                          f"samples; store one integer label per sample, shape ({n},)")
    ok = np.issubdtype(y.dtype, np.number) and np.isfinite(y).all() and (y >= 0).all() \
        and (np.asarray(y, dtype=np.int64) == y).all()
    if not ok:
        raise ConfigError(f"dataset {name}: labels must be class indices 0, 1, 2, ...; map "
                          "them with numpy.unique(y, return_inverse=True)[1]")
    return y.astype(np.int64)
