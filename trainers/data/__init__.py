"""Data sources a user names (`ring8`, `digits`, a path, ...), all loaded into one `Dataset`.

Every source reserves a fixed held-out real split for scoring; the split is drawn with a fixed
seed that does not depend on the trial's seed, so every trial of a sweep is scored against the
same real samples.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gansweep.trainers import plugins
from gansweep.trainers.errors import ConfigError

SPLIT_SEED = 20240611


def cache_dir(*parts: str) -> Path:
    """Where downloads and trained evaluators are cached: $GANSWEEP_CACHE or ~/.cache/gansweep."""
    import os

    root = Path(os.environ.get("GANSWEEP_CACHE", Path.home() / ".cache" / "gansweep"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Dataset:
    name: str
    kind: str  # "vector" (N, D) or "image" (N, C, H, W) in [-1, 1]
    train: np.ndarray
    held_out: np.ndarray
    train_labels: np.ndarray | None = None
    held_out_labels: np.ndarray | None = None
    modes: np.ndarray | None = None  # mixture means, for modes_captured / hq_fraction
    mode_std: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample."""
        return tuple(self.train.shape[1:])

    @property
    def has_labels(self) -> bool:
        return self.train_labels is not None

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the data exactly (evaluator cache key, run records); hashed once."""
        h = hashlib.sha1()
        for arr in (self.train, self.held_out):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        labels = "labelled" if self.has_labels else "unlabelled"
        return (f"{self.name}: {self.kind} data, sample shape {self.shape}, {labels}, "
                f"{len(self.train)} train / {len(self.held_out)} held-out")


def split(x: np.ndarray, y: np.ndarray | None, held_out: int | float, name: str, kind: str,
          **extra) -> Dataset:
    """Reserve a fixed held-out split (a count, or a fraction of the data)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    check_finite(x, name)
    n_hold = int(round(len(x) * held_out)) if isinstance(held_out, float) else int(held_out)
    if not 0 < n_hold < len(x):
        raise ConfigError(f"dataset {name} has {len(x)} samples: too few to hold out {n_hold}")
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(x))
    hold, keep = perm[:n_hold], perm[n_hold:]
    return Dataset(name, kind, x[keep], x[hold],
                   None if y is None else y[keep], None if y is None else y[hold], **extra)


def check_finite(x: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        raise ConfigError(
            f"dataset {name} has {int(bad.sum())} NaN or infinite values (first at index "
            f"{np.argwhere(bad)[0].tolist()}); clean or drop those samples"
        )


def dataset_name(spec: Any, short: bool = False) -> str:
    """The name a dataset spec (a name, a path, or {name: ...}) gives: as written, which is
    what mixtures and sources are looked up by; `short` keeps only a path's last part, for
    labels."""
    name = str(spec.get("name") if isinstance(spec, dict) else spec)
    return Path(name).name if short and "/" in name else name


def dataset_label(spec: Any) -> str:
    """A dataset spec as a line to a user reads it: `digits (image_size 16)`, not a dict."""
    if not isinstance(spec, dict):
        return dataset_name(spec)
    options = ", ".join(f"{k} {v}" for k, v in spec.items() if k != "name")
    return dataset_name(spec) + (f" ({options})" if options else "")


def load_dataset(spec: str | dict, image_size: int | None = None) -> Dataset:
    """Load a dataset by name, path, or `{name: ..., image_size: ..., subset: ...}`.

    `image_size` resizes image data to the trainer's size (None keeps the native size).
    """
    from gansweep.trainers.data import files, images, mixtures

    options: dict[str, Any] = {}
    if isinstance(spec, dict):
        options = dict(spec)
        if "name" not in options:
            raise ConfigError("dataset: give a name, e.g. {name: digits, image_size: 16}")
        spec = options.pop("name")
        if image_size is None:
            image_size = options.pop("image_size", None)
        else:
            options.pop("image_size", None)
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"dataset {spec!r}: give a name ({', '.join(NAMES)}) or a file path")
    if spec in mixtures.SOURCES:
        _no_options(spec, options, allowed=set())
        return mixtures.SOURCES[spec]()
    if spec in images.SOURCES:
        return images.SOURCES[spec](image_size=image_size, **options)
    if plugins.is_reference(spec) or spec in plugins.registered(GROUP):
        return from_loader(spec, image_size, options)
    if "/" in spec or "." in spec or Path(spec).exists():
        return files.load_path(Path(spec).expanduser(), image_size=image_size, **options)
    raise ConfigError(
        f"unknown dataset {spec!r}: use one of {', '.join(NAMES)}, or a path to a .npy/.npz "
        "array or a folder of PNG images"
    )


def from_loader(ref: str, image_size: int | None, options: dict) -> Dataset:
    """A research group's own loader (`dataset: my_lab.data:load`, or a name its package
    registers under `gansweep.datasets`): called with the spec's other dataset options, it
    returns the samples, or (samples, labels), as arrays; they are checked, split and sized
    like a .npy file's (trainers/data/files.py)."""
    from gansweep.trainers.data import files
    from gansweep.trainers.data.images import subset_option

    options = dict(options)
    subset = subset_option(ref, {"subset": options.pop("subset")} if "subset" in options else {})
    loader = plugins.load(ref, "dataset", GROUP)
    if not callable(loader):
        raise ConfigError(f"dataset: {ref} is not callable; point at a function that returns "
                          "the samples, or (samples, labels), as numpy arrays")
    try:
        got = loader(**options)
    except TypeError as exc:  # the spec's options do not fit its signature
        raise ConfigError(f"dataset: {ref}({', '.join(options)}) failed: {exc}; the "
                          "dataset mapping's other keys are passed to it by name") from None
    x, y = got if isinstance(got, tuple) and len(got) == 2 else (got, None)
    return files.from_arrays(x, y, ref, image_size, subset)


GROUP = "gansweep.datasets"


def _no_options(name: str, options: dict, allowed: set[str]) -> None:
    extra = sorted(set(options) - allowed)
    if extra:
        raise ConfigError(f"dataset {name} takes no option {', '.join(extra)}")


NAMES = ("ring8", "grid25", "gauss1d", "digits", "olivetti", "fashion-mnist")
