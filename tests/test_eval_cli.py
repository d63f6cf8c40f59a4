"""`gansweep eval`: score a samples file on the same footing as the trainers' reports."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gansweep.jobs.cli import main
from gansweep.trainers.data import load_dataset
from tests.conftest import run_cli


def test_eval_ring8_prints_json(tmp_path) -> None:
    data = load_dataset("ring8")
    path = tmp_path / "samples.npy"
    np.save(path, data.train[data.train_labels < 4][:2500])  # half the ring, adjacent modes
    proc = run_cli("eval", "--dataset", "ring8", str(path), "--json")
    out = json.loads(proc.stdout)
    m = out["metrics"]
    assert out["dataset"] == "ring8" and out["n"] == out["n_reference"] == 2500
    assert m["modes_captured"] == 4 and m["mode_diversity"] == 0.5
    assert m["reverse_kl"] == pytest.approx(np.log(2), abs=0.02)
    assert {"hq_fraction", "fid", "precision", "recall", "density", "coverage"} <= set(m)


def test_eval_digits_accepts_n_h_w_and_reads_like_the_reports(tmp_path, capsys) -> None:
    data = load_dataset("digits")
    path = tmp_path / "digits.npy"
    np.save(path, data.train[:359, 0])  # N x H x W: the channel axis is added
    assert main(["eval", "--dataset", "digits", str(path)]) == 0
    text = capsys.readouterr().out
    assert "CNN classifier (10 classes" in text and "classes_covered  10" in text
    assert main(["eval", "--dataset", "digits", str(path), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    assert m["coverage"] > 0.9 and m["class_hist_0"] > 0


@pytest.mark.parametrize("dataset,content,message", [
    ("ring8", None, "does not exist"),
    ("ring8", np.full((100, 2), np.nan), "NaN"),
    ("ring8", np.zeros((100, 3)), "expects N x D"),
    ("digits", np.zeros((100, 16, 16)), "--image-size"),
    ("digits", np.full((100, 8, 8), 255.0), r"must be in \[-1, 1\]"),
    ("ring8", np.array(["a", "b"]), "numeric"),
    ("nowhere", np.zeros((10, 2)), "unknown dataset"),
])
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, dataset, content, message) -> None:
    path = tmp_path / "samples.npy"
    if content is not None:
        np.save(path, content)
    assert main(["eval", "--dataset", dataset, str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gansweep eval: error:")
    assert re.search(message, err), err


def test_bad_input_exit_code_of_the_real_command(tmp_path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((10, 5)))
    proc = run_cli("eval", "--dataset", "gauss1d", str(tmp_path / "bad.npy"), check=False)
    assert proc.returncode == 2 and "expects N x D" in proc.stderr and not proc.stdout
