"""`gansweep train` runs every trainer on every data kind it supports and writes its outputs."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from gansweep.jobs.cli import main


@pytest.fixture(scope="module")
def user_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("user")
    rng = np.random.default_rng(0)
    np.save(d / "vec.npy", rng.normal(size=(300, 3)).astype(np.float32))
    np.savez(d / "img.npz", x=rng.uniform(-1, 1, size=(120, 1, 16, 16)).astype(np.float32),
             y=rng.integers(0, 3, size=120))
    (d / "png").mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, size=(16, 16, 3), dtype=np.uint8)).save(
            d / "png" / f"{i}.png")
    return d


CASES = [
    ("gan", "gauss1d", []), ("gan", "ring8", ["minibatch_disc=true"]), ("gan", "grid25", []),
    ("gan", "{u}/vec.npy", []),
    ("som", "ring8", ["rows=3", "cols=3"]), ("som", "digits", ["rule=online", "rows=3"]),
    ("som", "{u}/png", ["rows=2", "cols=2"]),
    ("dcgan", "digits", ["image_size=16", "width=4"]),
    ("dcgan", "{u}/png", ["image_size=16", "width=4", "loss=minimax"]),
    ("wgan", "digits", ["image_size=16", "width=4", "n_critic=2", "optimizer=rmsprop"]),
    ("wgan-gp", "{u}/img.npz", ["image_size=16", "width=4", "n_critic=2"]),
]


@pytest.mark.parametrize("trainer, dataset, sets", CASES,
                         ids=[f"{t}-{d.split('/')[-1]}" for t, d, _ in CASES])
def test_train_writes_its_outputs(trainer, dataset, sets, user_data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", trainer, "--dataset", dataset.format(u=user_data), "--steps", "4",
            "--report-every", "2", "--out", str(out)]
    for s in sets + ["batch_size=16"] * (trainer != "som"):
        args += ["--set", s]
    assert main(args) == 0, capsys.readouterr().err
    config = json.loads((out / "config.json").read_text())
    for s in sets:
        key, value = s.split("=")
        assert str(config["config"][key]).lower() == value
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [2, 4]
    assert (out / "checkpoint" / "state.pt").is_file()
    if trainer == "som":
        w = np.load(out / "weights.npy")
        assert w.shape[:2] == (config["config"]["rows"], config["config"]["cols"])
        assert "quantization_error" in rows[-1]
    else:
        assert np.isfinite(np.load(out / "samples.npy")).all()
        assert {"loss_g", "loss_d", "mode_diversity"} <= set(rows[-1])


def test_vector_samples_are_2500_rows(tmp_path):
    assert main(["train", "gan", "--dataset", "ring8", "--steps", "2", "--out",
                 str(tmp_path / "r")]) == 0
    assert np.load(tmp_path / "r" / "samples.npy").shape == (2500, 2)


@pytest.mark.parametrize("args, fragment", [
    (["train", "vae", "--dataset", "ring8"], "unknown trainer 'vae'"),
    (["train", "gan", "--dataset", "ring8", "--set", "lr_q=1"], "does not take lr_q"),
    (["train", "gan", "--dataset", "ring8", "--set", "batch_size=big"], "batch_size='big'"),
    (["train", "gan", "--dataset", "ring8", "--set", "lr_g=-1"], "out of range"),
    (["train", "gan", "--dataset", "ring8", "--set", "lr_g"], "write key=value"),
    (["train", "gan", "--dataset", "nosuch"], "unknown dataset 'nosuch'"),
    (["train", "dcgan", "--dataset", "ring8"], "takes image data"),
    (["train", "gan", "--dataset", "ring8", "--steps", "0"], "--steps must be at least 1"),
    (["train", "gan", "--dataset", "ring8", "--report-every", "0"],
     "--report-every must be at least 1"),
    (["train", "gan", "--dataset", "ring8", "--set", "lr_g=nan"], "lr_g=nan is not valid"),
    (["train", "gan", "--dataset", "ring8", "--seed", str(2**32)], "--seed 4294967296"),
])
def test_bad_input_exits_2_naming_the_key(args, fragment, tmp_path, capsys):
    assert main(args + ["--out", str(tmp_path / "x")]) == 2
    assert fragment in capsys.readouterr().err


def test_existing_run_dir_needs_resume(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["train", "gan", "--dataset", "gauss1d", "--steps", "2", "--out", out]) == 0
    assert main(["train", "gan", "--dataset", "gauss1d", "--steps", "2", "--out", out]) == 2
    assert "--resume" in capsys.readouterr().err


def test_torn_run_is_refused_on_resume_and_left_as_it_was(tmp_path, capsys):
    """A run whose config.json or checkpoint was torn (a copy cut short, a full disk under an
    older writer): --resume names the file and what to do, and changes nothing."""
    out = tmp_path / "r"
    assert main(["train", "gan", "--dataset", "gauss1d", "--steps", "2", "--out", str(out)]) == 0
    config, state = out / "config.json", out / "checkpoint" / "state.pt"
    whole = {config: config.read_bytes(), state: state.read_bytes()}
    args = ["train", "gan", "--dataset", "gauss1d", "--steps", "4", "--resume", "--out", str(out)]
    for torn, fragment in ((config, "config.json is unreadable"),
                           (state, "state.pt is unreadable")):
        torn.write_bytes(whole[torn][:len(whole[torn]) // 2])
        files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        capsys.readouterr()
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("gansweep train: error: --out") and fragment in err, err
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
        torn.write_bytes(whole[torn])
