"""Data sources: shapes, kinds, labels, held-out splits, and a clear message for each bad input.

Olivetti and Fashion-MNIST are tested on small files written here in their real on-disk
formats; no test touches the network (downloads go to an unroutable local port).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from gansweep.trainers.data import dataset_label, images, load_dataset, mixtures
from gansweep.trainers.errors import ConfigError

torch.set_num_threads(1)
DEAD_URL = "http://127.0.0.1:9/"  # the discard port: refused at once, never a hang


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("GANSWEEP_CACHE", str(root))
    return root


def rows(a: np.ndarray) -> list[bytes]:
    return sorted(r.tobytes() for r in np.asarray(a, np.float32).reshape(len(a), -1))


def rows_unsorted(a: np.ndarray) -> list[bytes]:
    return [r.tobytes() for r in np.asarray(a, np.float32).reshape(len(a), -1)]


def assert_partition(data, full: np.ndarray) -> None:
    """Train and held-out together are the source's samples, each used exactly once (compared
    as multisets: sources may repeat a sample, so a set-disjointness test would be wrong)."""
    assert len(data.held_out) > 0 and len(data.train) > 0
    assert rows(np.concatenate([data.train, data.held_out])) == rows(full)


def assert_described(data, kind: str, shape: tuple, labelled: bool) -> None:
    assert data.kind == kind and data.shape == shape and data.has_labels == labelled
    text = data.describe()
    assert f"{kind} data" in text and str(shape) in text
    assert ("unlabelled" not in text) == labelled


# ---- mixtures ------------------------------------------------------------------------------

def generated(means: np.ndarray, std: float) -> np.ndarray:
    n = mixtures.N_TRAIN + mixtures.N_HELD_OUT
    return mixtures.mixture(means, std, n, mixtures.DATA_SEED)[0]


def pixels(a: np.ndarray) -> np.ndarray:
    """0..255 -> [-1, 1], computed in float32 exactly as the loaders do."""
    return a.astype(np.float32) / np.float32(127.5) - 1.0


def component_stats(data) -> tuple[np.ndarray, np.ndarray]:
    x, c = data.train, data.train_labels
    means = np.stack([x[c == k].mean(0) for k in range(len(data.modes))])
    stds = np.stack([x[c == k].std(0) for k in range(len(data.modes))])
    return means, stds


def test_a_dataset_spec_reads_as_a_name_and_its_options():
    """What the driver's start line, `status` and `rerun` print: not a dict's repr."""
    assert dataset_label("ring8") == "ring8"
    assert dataset_label({"name": "digits", "image_size": 16, "subset": 500}) == \
        "digits (image_size 16, subset 500)"
    assert dataset_label({"name": "/data/x.npy"}) == "/data/x.npy"


def test_ring8():
    data = load_dataset("ring8")
    assert_described(data, "vector", (2,), True)
    angles = 2 * np.pi * np.arange(8) / 8
    means = np.stack([np.cos(angles), np.sin(angles)], 1)
    np.testing.assert_allclose(data.modes, means, atol=1e-6)
    assert data.mode_std == 0.01
    seen, stds = component_stats(data)
    np.testing.assert_allclose(seen, data.modes, atol=2e-3)
    np.testing.assert_allclose(stds, 0.01, rtol=0.1)
    assert len(data.held_out) == 2500 and len(data.train) == 50_000
    assert_partition(data, generated(means, 0.01))


def test_grid25():
    data = load_dataset("grid25")
    assert_described(data, "vector", (2,), True)
    g = [-4.0, -2.0, 0.0, 2.0, 4.0]
    means = np.array([(a, b) for a in g for b in g])
    assert {tuple(m) for m in data.modes.tolist()} == {tuple(m) for m in means.tolist()}
    assert data.mode_std == 0.05
    seen, stds = component_stats(data)
    np.testing.assert_allclose(seen, data.modes, atol=0.01)
    np.testing.assert_allclose(stds, 0.05, rtol=0.1)
    assert_partition(data, generated(means, 0.05))


def test_gauss1d():
    data = load_dataset("gauss1d")
    assert_described(data, "vector", (1,), True)
    assert abs(data.train.mean() - 4.0) < 0.01 and abs(data.train.std() - 0.5) < 0.01
    assert abs(data.held_out.mean() - 4.0) < 0.05
    assert_partition(data, generated(np.array([[4.0]]), 0.5))


# ---- digits --------------------------------------------------------------------------------

def test_digits_native_is_a_partition_of_the_bundled_set():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert_described(data, "image", (1, 8, 8), True)
    assert_partition(data, (load_digits().images[:, None].astype(np.float32) / 16.0) * 2 - 1)
    assert len(data.held_out) == round(0.2 * 1797)
    assert set(data.held_out_labels) == set(range(10))


@pytest.mark.parametrize("size", [16, 32, 64])
def test_digits_resize_keeps_range(size):
    data = load_dataset({"name": "digits", "image_size": size})
    assert data.shape == (1, size, size) and data.held_out.shape[1:] == (1, size, size)
    for part in (data.train, data.held_out):
        assert part.dtype == np.float32 and part.min() >= -1.0 and part.max() <= 1.0
    assert data.train.min() < -0.9 and data.train.max() > 0.9  # contrast survives


def test_subset_keeps_held_out_fixed():
    full = load_dataset("digits")
    part = load_dataset({"name": "digits", "subset": 100})
    assert len(part.train) == 100 and len(part.train_labels) == 100
    np.testing.assert_array_equal(part.held_out, full.held_out)
    assert set(rows(part.train)) <= set(rows(full.train))
    again = load_dataset({"name": "digits", "subset": 100})
    np.testing.assert_array_equal(again.train, part.train)  # fixed, not per-call


@pytest.mark.parametrize("spec, match", [
    ({"name": "digits", "subset": 0}, "subset=0"),
    ({"name": "digits", "subset": "many"}, "subset='many'"),
    ({"name": "digits", "subset": 10**6}, "subset=1000000 but only"),
    ({"name": "digits", "colour": True}, "takes no option colour"),
    ({"name": "digits", "image_size": 28}, "image_size=28"),
])
def test_bad_image_options(spec, match):
    with pytest.raises(ConfigError, match=match):
        load_dataset(spec)


# ---- Olivetti ------------------------------------------------------------------------------

def write_olivetti(cache: Path) -> np.ndarray:
    """olivetti_py3.pkz as fetch_olivetti_faces writes it: (400, 4096) uint8, joblib level 6."""
    faces = np.random.default_rng(0).integers(0, 256, (400, 4096), dtype=np.uint8)
    home = cache / "olivetti"
    home.mkdir(parents=True)
    joblib.dump(faces, home / images.OLIVETTI_FILE, compress=6)
    return faces


def test_olivetti_from_cache(cache):
    faces = write_olivetti(cache)
    data = load_dataset("olivetti")
    assert_described(data, "image", (1, 64, 64), True)
    assert data.info["classes"] == 40
    # Stratified: 2 of each identity's 10 faces held out.
    assert len(data.held_out) == 80
    assert np.bincount(data.held_out_labels, minlength=40).tolist() == [2] * 40
    # scikit-learn's layout: image i is faces[i] as a transposed 64x64, scaled to [0, 1]
    # by its min and max (0 and 255 here), then mapped to [-1, 1].
    unit = faces.reshape(400, 1, 64, 64).transpose(0, 1, 3, 2).astype(np.float32) / 255
    assert_partition(data, unit * 2 - 1)
    small = load_dataset({"name": "olivetti", "image_size": 32})
    assert small.shape == (1, 32, 32) and small.train.min() >= -1 and small.train.max() <= 1


@pytest.mark.filterwarnings("ignore:Retry downloading")  # scikit-learn retries once
def test_olivetti_without_cache_or_network(cache, monkeypatch):
    import sklearn.datasets._olivetti_faces as sk

    monkeypatch.setattr(sk, "FACES", sk.FACES._replace(url=DEAD_URL))
    with pytest.raises(ConfigError) as err:
        load_dataset("olivetti")
    msg = str(err.value)
    assert "network" in msg and images.OLIVETTI_FILE in msg and str(cache / "olivetti") in msg
    assert not list((cache / "olivetti").iterdir())  # no half-written file left behind


def test_olivetti_corrupt_cache(cache):
    (cache / "olivetti").mkdir(parents=True)
    (cache / "olivetti" / images.OLIVETTI_FILE).write_bytes(b"not a joblib file")
    with pytest.raises(ConfigError, match="unreadable.*delete it"):
        load_dataset("olivetti")


# ---- Fashion-MNIST -------------------------------------------------------------------------

def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_fashion(cache: Path, n: int = 60, header: bytes | None = None) -> np.ndarray:
    rng = np.random.default_rng(1)
    pics = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    home = cache / "fashion-mnist"
    home.mkdir(parents=True, exist_ok=True)
    raw = idx_bytes(pics)
    (home / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(raw if header is None else header + raw[len(header):]))
    (home / "train-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.arange(n, dtype=np.uint8) % 10)))
    return pics


def test_fashion_mnist_from_cache(cache):
    pics = write_fashion(cache)
    data = load_dataset("fashion-mnist")
    assert_described(data, "image", (1, 28, 28), True)
    assert len(data.held_out) == 10 and len(data.train) == 50  # 1/6 held out
    assert_partition(data, pixels(pics[:, None]))
    # Labels travel with their images (the file's label is the image's index % 10).
    index = {r: i for i, r in enumerate(rows_unsorted(pixels(pics[:, None])))}
    for part, labels in ((data.train, data.train_labels), (data.held_out, data.held_out_labels)):
        assert [index[r] % 10 for r in rows_unsorted(part)] == labels.tolist()

    sub = load_dataset({"name": "fashion-mnist", "subset": 20, "image_size": 32})
    assert sub.shape == (1, 32, 32) and len(sub.train) == 20 and len(sub.held_out) == 10
    assert sub.held_out.min() >= -1 and sub.held_out.max() <= 1


def test_fashion_mnist_without_cache_or_network(cache, monkeypatch):
    monkeypatch.setattr(images, "FASHION_URL", DEAD_URL)
    with pytest.raises(ConfigError) as err:
        load_dataset("fashion-mnist")
    msg = str(err.value)
    assert "network" in msg and "train-images-idx3-ubyte.gz" in msg
    assert str(cache / "fashion-mnist") in msg
    assert not list((cache / "fashion-mnist").iterdir())  # the partial download is removed


@pytest.mark.parametrize("header, match", [
    (bytes([0, 0, 0x08, 0x02]), "magic number 00000802"),
    (bytes([0, 0, 0x0D, 0x03]), "magic number 00000d03"),
    (bytes([0, 0, 0x08, 0x03, 0, 0, 0, 99]), "header says"),
])
def test_fashion_mnist_corrupt_idx(cache, header, match):
    write_fashion(cache, header=header)
    with pytest.raises(ConfigError, match=match):
        load_dataset("fashion-mnist")


def test_fashion_mnist_not_gzip(cache):
    write_fashion(cache)
    (cache / "fashion-mnist" / "train-labels-idx1-ubyte.gz").write_bytes(b"plain bytes")
    with pytest.raises(ConfigError, match="not a readable gzip file.*delete it"):
        load_dataset("fashion-mnist")


# ---- a path --------------------------------------------------------------------------------

def test_npy_vectors(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    np.save(tmp_path / "v.npy", x)
    data = load_dataset(str(tmp_path / "v.npy"), image_size=32)  # ignored for vectors
    assert_described(data, "vector", (3,), False)
    assert len(data.held_out) == 10
    assert_partition(data, x)


def test_npz_images_with_labels(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (20, 3, 8, 8)).astype(np.float32)
    np.savez(tmp_path / "i.npz", x=x, y=np.arange(20) % 4)
    data = load_dataset(str(tmp_path / "i.npz"))
    assert_described(data, "image", (3, 8, 8), True)
    assert_partition(data, x)
    assert sorted(np.concatenate([data.train_labels, data.held_out_labels])) == sorted(
        np.arange(20) % 4)
    assert load_dataset({"name": str(tmp_path / "i.npz"), "image_size": 16}).shape == (3, 16, 16)


def test_npz_arr0_hw_images(tmp_path):
    x = np.random.default_rng(0).uniform(-1, 1, (20, 8, 8))
    np.savez(tmp_path / "a.npz", x)
    assert_described(load_dataset(str(tmp_path / "a.npz")), "image", (1, 8, 8), False)


@pytest.mark.parametrize("gray", [True, False])
def test_png_folder(tmp_path, gray):
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = tmp_path / "pics"
    folder.mkdir()
    pics = rng.integers(0, 256, (10, 8, 8) if gray else (10, 8, 8, 3), dtype=np.uint8)
    for i, pic in enumerate(pics):
        Image.fromarray(pic).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("ignored")
    data = load_dataset(str(folder))
    assert_described(data, "image", (1 if gray else 3, 8, 8), False)
    chw = pics[:, None] if gray else pics.transpose(0, 3, 1, 2)
    assert_partition(data, pixels(chw))


def bad(tmp_path: Path, what: str) -> str:
    """Write one kind of bad input and return its path."""
    from PIL import Image

    rng = np.random.default_rng(0)
    p = tmp_path / what
    if what == "empty":
        p.mkdir()
    elif what == "mixed":
        p.mkdir()
        for i, side in enumerate([8, 8, 16]):
            Image.fromarray(rng.integers(0, 256, (side, side), dtype=np.uint8)).save(
                p / f"{i}.png")
    elif what == "wide":
        p.mkdir()
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 12), dtype=np.uint8)).save(p / f"{i}.png")
    elif what == "brokenpng":
        p.mkdir()
        (p / "0.png").write_bytes(b"not a png")
    else:
        arrays = {
            "flat.npy": np.arange(10.0),
            "nan.npy": np.where(np.arange(20) == 7, np.nan, 0.0).reshape(10, 2),
            "inf.npy": np.where(np.arange(20) == 3, np.inf, 0.0).reshape(10, 2),
            "rect.npy": np.zeros((10, 8, 6)),
            "bytes.npy": rng.integers(0, 256, (10, 8, 8)).astype(np.uint8),
            "last.npy": np.zeros((10, 8, 8, 3)),
            "few.npy": np.zeros((3, 2)),
            "deep.npy": np.zeros((10, 1, 1, 8, 8)),
        }
        if what in arrays:
            np.save(p, arrays[what])
        elif what == "nox.npz":
            np.savez(p, data=np.zeros((10, 2)))
        elif what == "badlabels.npz":
            np.savez(p, x=np.zeros((10, 2)), y=np.arange(9))
        elif what == "strlabels.npz":
            np.savez(p, x=np.zeros((10, 2)), y=np.array(["cat"] * 10))
        elif what == "junk.npy":
            p.write_bytes(b"garbage")
        elif what == "data.csv":
            p.write_text("1,2\n")
    return str(p)


@pytest.mark.parametrize("what, match", [
    ("missing.npy", "does not exist"),
    ("empty", "holds no .png images"),
    ("mixed", "mixes image sizes.*resize them"),
    ("wide", "height 8 and width 12.*square"),
    ("brokenpng", "0.png is not a readable PNG"),
    ("flat.npy", r"shape \(10,\).*one sample per row"),
    ("nan.npy", "1 NaN or infinite values"),
    ("inf.npy", "1 NaN or infinite values"),
    ("rect.npy", "height 8 and width 6.*square"),
    ("bytes.npy", r"\[-1, 1\].*x / 127.5 - 1"),
    ("last.npy", r"channels-last.*transpose\(0, 3, 1, 2\)"),
    ("few.npy", "at least 5"),
    ("deep.npy", r"shape \(10, 1, 1, 8, 8\)"),
    ("nox.npz", r"arrays \['data'\].*store the samples as x"),
    ("badlabels.npz", r"labels have shape \(9,\)"),
    ("strlabels.npz", "class indices"),
    ("junk.npy", "unreadable"),
    ("data.csv", "unsupported file type '.csv'"),
])
def test_bad_path_inputs(tmp_path, what, match):
    with pytest.raises(ConfigError, match=match):
        load_dataset(bad(tmp_path, what))


def test_zero_to_one_images_warn(tmp_path):
    np.save(tmp_path / "u.npy", np.random.default_rng(0).uniform(0, 1, (10, 8, 8)))
    with pytest.warns(UserWarning, match="2 \\* x - 1"):
        load_dataset(str(tmp_path / "u.npy"))
