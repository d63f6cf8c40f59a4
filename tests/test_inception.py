"""`features: inception`: Inception-v3 features through torch-fidelity (analysis/inception.py).

The real loading code is tested on a stand-in for the downloaded weights: torch-fidelity's own
FeatureExtractorInceptionV3, built with random initialisation (its constructor's loading is
skipped by a subclass, only here), saved as the weights file where gansweep looks for it. The
file then goes through gansweep's real weight lookup and check and torch-fidelity's real
constructor, loading and forward pass (uint8 RGB, its own resize to 299 x 299). The numbers are
random-network numbers: they test the plumbing, not Inception. Nothing here reaches a network:
a download attempt would create TORCH_HOME/hub/checkpoints, which the refusal test asserts
never happens.
"""
from __future__ import annotations

import dataclasses
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from gansweep.analysis import features, inception
from gansweep.analysis.metrics import score
from gansweep.jobs.spec import parse_spec
from gansweep.jobs.submit import check_data
from gansweep.trainers.data import load_dataset
from gansweep.trainers.errors import ConfigError
from tests.conftest import run_cli, tiny_spec

N = 16  # images per side: Inception at 299 x 299 costs ~0.15 s an image on one CPU thread


def standin_state_dict() -> dict:
    """torch-fidelity's Inception-v3, randomly initialised (Kaiming, so activations neither
    vanish nor explode through its ~90 layers), as a state dict."""
    cls = inception._extractor().FeatureExtractorInceptionV3

    class Unloaded(cls):
        def load_state_dict(self, state_dict, strict=True):  # keep the random init
            return None

    gen = torch.Generator().manual_seed(0)
    empty = torch.nn.Module()  # the constructor loads a file; give it an empty one
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pth") as f:
        torch.save(empty.state_dict(), f.name)
        net = Unloaded("standin", ["2048"], feature_extractor_weights_path=f.name)
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen)
    return net.state_dict()


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """The stand-in saved once, under torch-fidelity's own file name."""
    _, cached = inception.source()
    path = tmp_path_factory.mktemp("weights") / cached.name
    torch.save(standin_state_dict(), path)
    return path


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def small_digits():
    data = load_dataset("digits")
    return dataclasses.replace(data, held_out=data.held_out[:N],
                               held_out_labels=data.held_out_labels[:N])


@pytest.mark.slow
def test_digits_are_scored_in_inception_features_from_the_hub_cache(weights_file, torch_home):
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / weights_file.name).symlink_to(weights_file)
    data = small_digits()
    torch.set_num_threads(1)
    feats = features.check("inception", data)  # what the driver runs before any trial
    assert "Inception-v3" in feats.describe() and str(checkpoints) in feats.describe()
    f = feats.features(data.held_out)
    assert f.shape == (N, 2048) and np.isfinite(f).all() and f.std(axis=0).max() > 0
    same = score(data.held_out, data, full=True, evaluator=feats)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["precision"] == 1.0
    other = score(data.train[:N], data, full=True, evaluator=feats)  # other digits
    assert np.isfinite(other["fid"]) and other["fid"] > 1e-6


def test_the_images_reach_the_library_as_uint8_rgb(weights_file):
    net = inception.Inception(weights_file)
    seen = []
    net.net.forward = lambda x: seen.append(x) or (torch.zeros(len(x), 2048),)
    grey = torch.tensor([-1.0, -0.5, 0.0, 1.0]).reshape(1, 1, 2, 2)
    out = net(grey.repeat(70, 1, 1, 1))  # two batches
    assert out.shape == (70, 2048) and [len(b) for b in seen] == [inception.BATCH, 6]
    img = seen[0][0]
    assert img.dtype == torch.uint8 and img.shape == (3, 2, 2)
    assert img[0].flatten().tolist() == [0, 64, 128, 255] and (img[0] == img[2]).all()


def test_the_path_form_is_made_absolute_and_loads_that_file(weights_file, torch_home,
                                                            tmp_path, monkeypatch):
    monkeypatch.chdir(weights_file.parent)
    spec = parse_spec({**_digits_spec(tmp_path), "features": {"inception": weights_file.name}})
    assert spec.features == {"inception": str(weights_file)}
    feats = features.load(spec.features)  # nothing in the hub cache: the path is used
    assert feats.features(small_digits().held_out[:6]).shape == (6, 2048)
    missing = {"inception": str(tmp_path / "nothing.pth")}
    with pytest.raises(ConfigError, match=r"no file there; put weights-inception-.*\.pth there "
                                          r"\(download it from https://"):
        features.load(missing)
    broken = tmp_path / "broken.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, broken)
    with pytest.raises(ConfigError, match="does not hold torch-fidelity's Inception-v3 weights"):
        features.load({"inception": str(broken)})


def test_without_weights_submit_refuses_before_anything_is_made(tmp_path):
    home, store = tmp_path / "empty-torch-home", tmp_path / "store"
    home.mkdir()
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**_digits_spec(store), "features": "inception"}))
    # a download would go through this proxy and fail at once rather than hang
    env = {"TORCH_HOME": str(home), "HTTPS_PROXY": "http://127.0.0.1:9",
           "HTTP_PROXY": "http://127.0.0.1:9"}
    proc = run_cli("submit", str(spec), check=False, env=env, timeout=120)
    url, cached = "https://github.com/toshas/torch-fidelity/releases/download/", \
        home / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert proc.returncode == 2, proc.stderr
    assert (f"features: inception needs {cached.name} in {cached.parent} (download it from "
            f"{url}") in proc.stderr, proc.stderr
    assert "or give its path as features: {inception: PATH}" in proc.stderr
    assert "Traceback" not in proc.stderr and not store.exists()
    assert not (home / "hub").exists()  # torch.hub makes checkpoints/ before it downloads


def test_train_from_a_sweep_without_weights_writes_nothing(torch_home, tmp_path):
    from gansweep.jobs.train_cmd import train_to_dir

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="features: inception needs weights-inception"):
        train_to_dir("dcgan", "digits", _digits_spec(tmp_path)["fixed"], 2, out,
                     features="inception", log=lambda *_: None)
    assert not out.exists()


def test_refused_where_there_are_no_images_to_score(tmp_path):
    spec = parse_spec(tiny_spec(tmp_path / "store", features="inception"))  # ring8
    with pytest.raises(ConfigError, match="dataset ring8 is vector data. The built-in "
                                          "evaluators stay the default for mixtures"):
        check_data(spec)
    som = {"name": "m", "trainer": "som", "dataset": "digits", "trials": 1, "steps": 2,
           "features": "inception", "storage": str(tmp_path)}
    with pytest.raises(ConfigError, match="trainer som leaves a map"):
        parse_spec(som)
    with pytest.raises(ConfigError, match=r"features: \{inception: 3\} is not valid"):
        parse_spec({**_digits_spec(tmp_path), "features": {"inception": 3}})


def test_without_torch_fidelity_the_message_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("torch_fidelity")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"^features: inception needs torch-fidelity; "
                                          r"pip install 'gansweep\[fid\]'$"):
        inception.weights()


def test_reports_name_the_features_and_never_compare_across_them():
    from gansweep.analysis.report import comparable_groups, family_rows

    assert features.fid_label(None) == ("fid (gansweep evaluator features; not comparable to "
                                        "papers)")
    assert features.fid_label("inception") == "fid (Inception-v3, torch-fidelity)"
    assert features.fid_label({"inception": "/w.pth"}) == "fid (Inception-v3, torch-fidelity)"

    def sweep(name, feats):
        trials = pd.DataFrame({"state": ["completed"], "value": [1.0], "final_fid": [1.0]})
        return SimpleNamespace(name=name, trainer="dcgan", dataset_name="digits", metric="fid",
                               features=feats, trials=trials)

    a, b, c = sweep("a", None), sweep("b", "inception"), sweep("c", {"inception": "/w.pth"})
    assert comparable_groups([a, b, c]) == [[a], [b, c]]
    assert family_rows([b], "fid")[0]["metric"] == "fid (Inception-v3, torch-fidelity) (min)"


def _digits_spec(storage) -> dict:
    return {"name": "incep", "trainer": "dcgan", "dataset": "digits", "trials": 1, "steps": 4,
            "report_every": 2, "metric": "fid", "seeds": 1,
            "fixed": {"image_size": 8, "width": 8, "batch_size": 16}, "storage": str(storage)}


@pytest.mark.slow
def test_a_sweep_scores_in_inception_features_on_its_workers(weights_file, tmp_path):
    """One tiny sweep through the CLI: the Ray worker finds the weights in its TORCH_HOME
    (inherited from the driver), and status says what its fid is measured in."""
    import json

    home = tmp_path / "torch-home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    (home / "hub" / "checkpoints" / weights_file.name).symlink_to(weights_file)
    images = tmp_path / "digits60.npy"  # 12 held out: Inception on CPU scores 12 a side
    np.save(images, load_dataset("digits").train[:60].astype(np.float32))
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({**_digits_spec(tmp_path / "store"), "dataset": str(images),
                                    "features": "inception"}))
    env = {"TORCH_HOME": str(home), "HTTPS_PROXY": "http://127.0.0.1:9"}
    run_cli("submit", str(spec), env=env, timeout=400)
    root = tmp_path / "store" / "incep"
    (result,) = [json.loads(p.read_text()) for p in root.glob("trials/*/result.json")]
    assert result["stop_reason"] == "completed" and np.isfinite(result["final"]["fid"])
    assert not (root / "evaluators").exists()  # the built-in evaluator is never trained
    status = run_cli("status", str(root), env=env).stdout
    assert ("fid, precision/recall, density/coverage measured in: Inception-v3, "
            "torch-fidelity") in status
