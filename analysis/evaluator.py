"""The feature space image metrics are measured in: a small network learnt from each dataset.

No pretrained Inception can be downloaded here, so every image dataset gets its own evaluator:
a small CNN classifier trained on the dataset's labels (digits and Fashion-MNIST: 10 classes,
Olivetti: 40 identities), or for unlabelled images a convolutional autoencoder. Features are
the classifier's penultimate layer (before its ReLU, so they are dense rather than half zero,
which keeps FID's Gaussians well conditioned), or the autoencoder's code.

Trained once per (dataset fingerprint, image shape), deterministically: fixed seed, its own
RNG (the global torch RNG a trainer relies on for bit-for-bit resume is left untouched), one
CPU thread (float sums then do not depend on the machine's core count), always on CPU (the
same numbers whether a trial ran on a GPU or `gansweep eval` on a laptop). The weights are
cached under cache_dir("evaluators"); a file lock makes concurrent Ray trials on one machine
train it once, and the write is an atomic rename, so a reader never sees half a file. Within
one process the evaluator is also kept in memory, so each trainer loads it once, not per report.
"""
from __future__ import annotations

import contextlib
import io
import math
import re
import time
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gansweep.analysis.layout import write_file
from gansweep.trainers.data import Dataset, cache_dir

VERSION = 1  # bump when the architecture or training changes: old cache files are ignored
SEED = 0
FEATURE_DIM = 64
CODE_DIM = 32
BATCH = 64
LR = 2e-3
EPOCHS = 15
MIN_STEPS, MAX_STEPS = 300, 1500  # digits: 345 steps (~1.5 s CPU at 8 px); Fashion-MNIST: 1500
FORWARD_BATCH = 512

TRAIN_COUNT = 0  # evaluators trained by this process (tests check the cache spares them)


# ---- networks ------------------------------------------------------------------------------

def _trunk(channels: int, height: int, width: int) -> tuple[nn.Sequential, list[int], bool]:
    """Conv stack halving the image down to 4 x 4.

    Returns the stack, the channel width at each resolution (finest first, 4 x 4 last) and
    whether the first layer already halves. Narrow (16 -> 64 channels) and halving from the
    first layer on for images over 8 px: it trains in seconds on one CPU thread at 32 x 32,
    and a 64-d embedding of small grey images needs no more.
    """
    ch, h, w = 16, height, width
    first_halves = min(h, w) > 8
    layers: list[nn.Module] = [nn.Conv2d(channels, ch, 3, stride=2 if first_halves else 1,
                                         padding=1), nn.ReLU()]
    if first_halves:
        h, w = (h + 1) // 2, (w + 1) // 2
    widths = [ch]
    while min(h, w) > 4:
        nxt = min(2 * ch, 64)
        layers += [nn.Conv2d(ch, nxt, 3, stride=2, padding=1), nn.ReLU()]
        ch, h, w = nxt, (h + 1) // 2, (w + 1) // 2
        widths.append(ch)
    if (h, w) != (4, 4):  # odd or non-square sizes; skipped when exact (it costs on CPU)
        layers.append(nn.AdaptiveAvgPool2d(4))
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), widths, first_halves


class Classifier(nn.Module):
    def __init__(self, shape: tuple[int, int, int], n_classes: int):
        super().__init__()
        self.trunk, widths, _ = _trunk(*shape)
        self.embed = nn.Linear(16 * widths[-1], FEATURE_DIM)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEATURE_DIM, n_classes))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.embed(self.trunk(x))
        return f, self.head(f)


class AutoEncoder(nn.Module):
    """The trunk, a linear code, and its mirror image back up to the input size."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.shape = shape
        trunk, widths, first_halves = _trunk(*shape)
        ch = widths[-1]
        self.encoder = nn.Sequential(trunk, nn.Linear(16 * ch, CODE_DIM))
        up: list[nn.Module] = [nn.Linear(CODE_DIM, 16 * ch), nn.ReLU(), nn.Unflatten(1, (ch, 4, 4))]
        for nxt in reversed(widths[:-1]):  # transposed convs: half the cost of upsample+conv
            up += [nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1), nn.ReLU()]
            ch = nxt
        self.decoder = nn.Sequential(*up)
        self.out = (nn.ConvTranspose2d(ch, shape[0], 4, stride=2, padding=1) if first_halves
                    else nn.Conv2d(ch, shape[0], 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        y = self.out(self.decoder(code))
        if tuple(y.shape[-2:]) != self.shape[1:]:  # sides that are not 4 * 2^k
            y = F.interpolate(y, size=self.shape[1:], mode="bilinear", align_corners=False)
        return code, torch.tanh(y)


def _network(meta: dict[str, Any]) -> nn.Module:
    shape = tuple(meta["shape"])
    if meta["kind"] == "classifier":
        return Classifier(shape, meta["n_classes"])
    return AutoEncoder(shape)


# ---- the evaluator -------------------------------------------------------------------------

class Evaluator:
    """Maps (N, C, H, W) images in [-1, 1] to (N, F) features (and class predictions)."""

    def __init__(self, net: nn.Module, meta: dict[str, Any]):
        self.net = net.eval()
        self.meta = meta

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def n_classes(self) -> int | None:
        return self.meta.get("n_classes")

    def describe(self) -> str:
        if self.kind == "classifier":
            return (f"CNN classifier ({self.n_classes} classes, held-out accuracy "
                    f"{self.meta['held_out_accuracy']:.3f}), {FEATURE_DIM}-d features")
        return f"autoencoder, {CODE_DIM}-d code (held-out MSE {self.meta['held_out_mse']:.4f})"

    @torch.no_grad()
    def embed(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Features, and for a classifier the predicted class of each image."""
        feats, preds = [], []
        with _one_thread():
            for lo in range(0, len(x), FORWARD_BATCH):
                xb = torch.as_tensor(np.ascontiguousarray(x[lo:lo + FORWARD_BATCH]),
                                     dtype=torch.float32)
                if self.kind == "classifier":
                    f, logits = self.net(xb)
                    preds.append(logits.argmax(dim=1).numpy())
                else:  # the code only: no need to decode
                    f = self.net.encoder(xb)
                feats.append(f.double().numpy())
        f = np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM))
        return f, (np.concatenate(preds) if preds else None)

    def features(self, x: np.ndarray) -> np.ndarray:
        return self.embed(x)[0]


# ---- training ------------------------------------------------------------------------------

@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _n_classes(data: Dataset) -> int:
    given = data.info.get("classes")
    if given:
        return int(given)
    return int(max(data.train_labels.max(), data.held_out_labels.max())) + 1


def train(data: Dataset) -> Evaluator:
    """Train the dataset's evaluator from scratch (deterministic; see the module doc)."""
    global TRAIN_COUNT
    t0 = time.perf_counter()
    shape = tuple(int(s) for s in data.shape)
    labelled = data.has_labels
    meta: dict[str, Any] = {
        "version": VERSION, "dataset": data.name, "fingerprint": data.fingerprint,
        "shape": list(shape), "kind": "classifier" if labelled else "autoencoder",
        "n_classes": _n_classes(data) if labelled else None,
    }
    x = torch.as_tensor(data.train, dtype=torch.float32)
    y = torch.as_tensor(data.train_labels, dtype=torch.long) if labelled else None
    steps = int(np.clip(EPOCHS * math.ceil(len(x) / BATCH), MIN_STEPS, MAX_STEPS))
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(SEED)
        gen = torch.Generator().manual_seed(SEED)
        net = _network(meta).train()
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        order = torch.randperm(len(x), generator=gen)
        pos = 0
        for _ in range(steps):
            if pos + BATCH > len(x):  # a new epoch: reshuffle, drop the ragged tail
                order, pos = torch.randperm(len(x), generator=gen), 0
            idx = order[pos:pos + BATCH]
            pos += BATCH
            out = net(x[idx])[1]
            loss = F.cross_entropy(out, y[idx]) if labelled else F.mse_loss(out, x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    ev = Evaluator(net, meta)
    _, pred = ev.embed(data.held_out)
    if labelled:
        meta["held_out_accuracy"] = float((pred == data.held_out_labels).mean())
    else:
        with torch.no_grad(), _one_thread():
            recon = net(torch.as_tensor(data.held_out, dtype=torch.float32))[1].numpy()
        meta["held_out_mse"] = float(((recon - data.held_out) ** 2).mean())
    meta.update(train_steps=steps, train_seconds=round(time.perf_counter() - t0, 3),
                torch=str(torch.__version__))
    TRAIN_COUNT += 1
    return ev


# ---- the cache -----------------------------------------------------------------------------

_MEMO: dict[str, Evaluator] = {}  # cache key -> evaluator, this process
_BY_DATA: dict[int, tuple[weakref.ref, Evaluator]] = {}  # id(Dataset) -> evaluator


def cache_key(data: Dataset) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.name)[:40]
    shape = "x".join(map(str, data.shape))
    return f"{name}-{data.fingerprint}-{shape}-v{VERSION}"


def evaluator_dir(directory: str | Path | None = None) -> Path:
    """`directory` when given (a sweep points every trial, on every node, at one copy in its
    own directory), else the per-machine cache."""
    if directory is None:
        return cache_dir("evaluators")
    Path(directory).mkdir(parents=True, exist_ok=True)
    return Path(directory)


def cache_path(data: Dataset, directory: str | Path | None = None) -> Path:
    return evaluator_dir(directory) / f"{cache_key(data)}.pt"


def scores_through(output: str, data: Dataset) -> bool:
    """Whether a trainer whose runs leave `output` (its `OUTPUT`) is scored in this module's
    features on `data`: samples of images are; a map's weights (SOM) are scored in data space."""
    return output == "samples" and data.kind == "image"


def for_dataset(data: Dataset, directory: str | Path | None = None) -> Evaluator | None:
    """The dataset's evaluator (None for vector data, whose own space is the feature space),
    from `directory` or the per-machine cache.

    Memoised per Dataset object, so a trainer's reports neither re-hash the data for the
    cache key nor reload the weights.
    """
    if data.kind != "image":
        return None
    hit = _BY_DATA.get(id(data))
    if hit is not None and hit[0]() is data:
        return hit[1]
    ev = load_or_train(data, directory)
    for key in [k for k, (ref, _) in _BY_DATA.items() if ref() is None]:
        del _BY_DATA[key]
    _BY_DATA[id(data)] = (weakref.ref(data), ev)
    return ev


def load_or_train(data: Dataset, directory: str | Path | None = None) -> Evaluator:
    """Load the cached evaluator of `data`, training and caching it first if there is none."""
    from gansweep.analysis import layout

    key = cache_key(data)
    if layout.is_uri(directory):  # a sweep in a bucket: one copy there, each node caches it
        return _through_bucket(data, layout.sweep_path(directory) / f"{key}.pt")
    path = evaluator_dir(directory) / f"{key}.pt"
    ev = _MEMO.get(key) or _load(path, data)
    if ev is None:
        with _file_lock(path.with_suffix(".lock")):
            ev = _load(path, data)  # another process may have trained it while we waited
            if ev is None:
                ev = train(data)
                save(ev, path)
    elif not path.exists():  # held in memory from another cache dir: store a copy here too
        save(ev, path)
    _MEMO[key] = ev
    return ev


def _through_bucket(data: Dataset, remote) -> Evaluator:
    """The evaluator a sweep in a bucket keeps at `remote`: fetched into this machine's cache
    (and loaded from there, weights only) or, the first time, trained and put there, so every
    trial on every node scores with the same weights."""
    local = cache_path(data)
    if not local.is_file() and remote.is_file():
        write_file(local, remote.read_bytes())
    ev = load_or_train(data)
    if not remote.is_file():
        remote.write_bytes(local.read_bytes())
    return ev


def save(ev: Evaluator, path: Path) -> None:
    """Durable and atomic, so a reader in another process never sees a half-written file."""
    buf = io.BytesIO()
    torch.save({"meta": ev.meta, "state_dict": ev.net.state_dict()}, buf)
    write_file(path, buf.getvalue())


def clear_memory_cache() -> None:
    """Forget evaluators held in memory (the files stay): the next call loads from disk."""
    _MEMO.clear()
    _BY_DATA.clear()


def _load(path: Path, data: Dataset) -> Evaluator | None:
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        meta = saved["meta"]
        if meta["version"] != VERSION or meta["fingerprint"] != data.fingerprint:
            raise ValueError("written for other data or another evaluator version")
        net = _network(meta)
        net.load_state_dict(saved["state_dict"])
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged file: retrain over it
        warnings.warn(f"evaluator cache {path} unusable ({exc}); retraining", stacklevel=3)
        return None
    return Evaluator(net, meta)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock across processes on one machine (POSIX); elsewhere a no-op, and the
    atomic rename still keeps the file whole (two processes may then both train it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
