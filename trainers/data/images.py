"""Image datasets: scikit-learn's bundled digits, Olivetti faces, Fashion-MNIST.

Images are float32 (N, C, H, W) in [-1, 1]; labels are kept for the evaluator. Every image
source takes the option `subset` (keep that many training images, a fixed seeded choice; the
held-out split is drawn first and does not change, so scores stay comparable across subsets).
The two downloaded sets are fetched once into cache_dir(<name>); without a network and without
the cached files they fail with one ConfigError that says which file to put where.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import socket
import tempfile
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gansweep.trainers.data import SPLIT_SEED, Dataset, cache_dir, check_finite, split
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import IMAGE_SIZES

SUBSET_SEED = SPLIT_SEED + 1  # fixed, and independent of the trial's seed
DOWNLOAD_TIMEOUT_S = 60  # per socket operation: a dead network fails instead of hanging


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


def subset_option(name: str, options: dict[str, Any]) -> int | None:
    """The `subset` option, checked; any other option is refused by name."""
    options = dict(options)
    subset = options.pop("subset", None)
    if options:
        raise ConfigError(f"dataset {name} takes no option {', '.join(sorted(options))}; "
                          "it takes image_size and subset")
    if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int)
                               or subset < 1):
        raise ConfigError(f"dataset {name}: subset={subset!r} is not valid; use a positive "
                          "integer number of training samples, e.g. subset: 5000")
    return subset


def take_subset(data: Dataset, subset: int | None) -> Dataset:
    """Keep `subset` training samples (fixed seeded choice, original order); held-out unchanged."""
    if subset is None:
        return data
    if subset > len(data.train):
        raise ConfigError(f"dataset {data.name}: subset={subset} but only {len(data.train)} "
                          f"training samples exist; use subset <= {len(data.train)} or drop it")
    keep = np.sort(np.random.default_rng(SUBSET_SEED).choice(len(data.train), subset,
                                                             replace=False))
    data.train = data.train[keep]
    if data.train_labels is not None:
        data.train_labels = data.train_labels[keep]
    data.info["subset"] = subset
    return data


def resize_dataset(data: Dataset, image_size: int | None) -> Dataset:
    data.train = resize(data.train, image_size)
    data.held_out = resize(data.held_out, image_size)
    return data


# ---- digits (bundled with scikit-learn: the offline default) --------------------------------

def digits(image_size: int | None = None, **options: Any) -> Dataset:
    from sklearn.datasets import load_digits

    subset = subset_option("digits", options)
    check_size(image_size, "digits")
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0) * 2.0 - 1.0  # pixel values 0..16
    data = split(x[:, None], d.target.astype(np.int64), 0.2, "digits", "image",
                 info={"classes": 10})
    return resize_dataset(take_subset(data, subset), image_size)


# ---- Olivetti faces (scikit-learn's fetcher, cached in cache_dir("olivetti")) ---------------

OLIVETTI_FILE = "olivetti_py3.pkz"  # the name fetch_olivetti_faces caches the faces under
OLIVETTI_HELD_OUT = 2  # faces per identity (of 10): a stratified 20%, every identity in both


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    # scikit-learn's fetcher calls urlretrieve without a timeout; a silent network would hang.
    before = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(before)


def olivetti(image_size: int | None = None, **options: Any) -> Dataset:
    from sklearn.datasets import fetch_olivetti_faces

    subset = subset_option("olivetti", options)
    check_size(image_size, "olivetti")
    home = cache_dir("olivetti")
    cached = (home / OLIVETTI_FILE).is_file()
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            faces = fetch_olivetti_faces(data_home=str(home), n_retries=1, delay=1.0)
    except Exception as exc:
        if cached:
            raise ConfigError(
                f"dataset olivetti: the cached {home / OLIVETTI_FILE} is unreadable ({exc}); "
                "delete it and run once with network access to fetch it again"
            ) from exc
        if isinstance(exc, OSError):  # URLError, timeouts, refused connections
            raise ConfigError(
                f"dataset olivetti: {OLIVETTI_FILE} is not cached in {home} and downloading "
                f"it failed ({exc}). Run once with network access (it is cached for later), "
                f"or copy {OLIVETTI_FILE} from a machine where scikit-learn fetched it "
                f"(~/scikit_learn_data/{OLIVETTI_FILE}) into {home}"
            ) from exc
        raise
    x = faces.images.astype(np.float32)[:, None] * 2.0 - 1.0  # scikit-learn scales to [0, 1]
    data = stratified_split(x, faces.target.astype(np.int64), OLIVETTI_HELD_OUT, "olivetti",
                            info={"classes": 40})
    return resize_dataset(take_subset(data, subset), image_size)


def stratified_split(x: np.ndarray, y: np.ndarray, per_class: int, name: str,
                     **extra: Any) -> Dataset:
    """Hold out `per_class` samples of every class (fixed seed), like split() otherwise."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    check_finite(x, name)
    rng = np.random.default_rng(SPLIT_SEED)
    hold = np.zeros(len(x), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        if len(members) <= per_class:
            raise ConfigError(f"dataset {name}: class {c} has {len(members)} samples, too few "
                              f"to hold out {per_class}")
        hold[rng.choice(members, per_class, replace=False)] = True
    return Dataset(name, "image", x[~hold], x[hold], y[~hold], y[hold], **extra)


# ---- Fashion-MNIST (idx files from Zalando, cached in cache_dir("fashion-mnist")) -----------

FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {  # the official MD5s; checked on download only
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
}
FASHION_HELD_OUT = 1 / 6  # of the 60000 training images: 10000, the official test-set size


def fashion_mnist(image_size: int | None = None, **options: Any) -> Dataset:
    subset = subset_option("fashion-mnist", options)
    check_size(image_size, "fashion-mnist")
    home = cache_dir("fashion-mnist")
    paths = {f: fetch(f, home) for f in FASHION_FILES}
    images = read_idx(paths["train-images-idx3-ubyte.gz"], ndim=3)
    labels = read_idx(paths["train-labels-idx1-ubyte.gz"], ndim=1).astype(np.int64)
    if len(images) != len(labels) or images.shape[1:] != (28, 28):
        raise ConfigError(
            f"dataset fashion-mnist: {home} holds {images.shape} images and {len(labels)} "
            "labels, not N 28x28 images with N labels; delete both files to download them again"
        )
    # Split the indices, not the pixels: the same fixed held-out choice as every source,
    # without a float copy of all 60000 images when only a subset is wanted.
    idx = split(np.arange(len(images), dtype=np.float32)[:, None], labels, FASHION_HELD_OUT,
                "fashion-mnist", "image", info={"classes": 10})
    data = take_subset(idx, subset)

    def pixels(rows: np.ndarray) -> np.ndarray:
        return images[rows[:, 0].astype(np.int64)][:, None] / np.float32(127.5) - 1.0

    data.train, data.held_out = pixels(data.train), pixels(data.held_out)
    return resize_dataset(data, image_size)


def fetch(filename: str, home: Path) -> Path:
    """The cached file, downloaded (atomically, MD5-checked) if missing."""
    path = home / filename
    if path.is_file():
        return path
    url = FASHION_URL + filename
    fd, tmp = tempfile.mkstemp(prefix=filename + ".", suffix=".part", dir=home)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(
                url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            md5 = hashlib.md5()
            while chunk := response.read(1 << 20):
                md5.update(chunk)
                out.write(chunk)
        if md5.hexdigest() != FASHION_FILES[filename]:
            raise ConfigError(f"dataset fashion-mnist: the download of {url} is corrupt (MD5 "
                              f"{md5.hexdigest()}); run again to retry")
        os.replace(tmp, path)
    except OSError as exc:  # URLError, HTTPError, timeouts, refused connections
        raise ConfigError(
            f"dataset fashion-mnist: {filename} is not cached in {home} and downloading it "
            f"from {url} failed ({exc}). Run once with network access (it is cached for "
            f"later), or download {', '.join(FASHION_FILES)} from {FASHION_URL} elsewhere "
            f"and copy them into {home}"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A gzipped idx file of unsigned bytes (LeCun's MNIST format) as a numpy array."""
    fix = "delete it so it is downloaded again, or replace it with the original file"
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ConfigError(f"{path} is not a readable gzip file ({exc}): {fix}") from exc
    # Magic number: two zero bytes, the type code (0x08 = unsigned byte), the number of dims.
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise ConfigError(f"{path} is not an idx file of {ndim}-D unsigned bytes (magic "
                          f"number {raw[:4].hex() or 'missing'}, expected "
                          f"000008{ndim:02x}): {fix}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"{path} is truncated inside its header: {fix}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise ConfigError(f"{path} holds {len(raw) - header} bytes of data but its header "
                          f"says {dims} = {int(np.prod(dims))}: {fix}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


SOURCES = {"digits": digits, "olivetti": olivetti, "fashion-mnist": fashion_mnist}
