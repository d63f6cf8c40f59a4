"""The Kohonen SOM trainer: learning, the argmin winner, resume, scores against MiniSom, input."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from minisom import MiniSom

from gansweep.analysis.metrics import som_scores
from gansweep.jobs.cli import main
from gansweep.trainers.data import Dataset, load_dataset
from gansweep.trainers.registry import build
from gansweep.trainers.som import SOM
from tests.conftest import run_cli

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def flat(data: Dataset) -> np.ndarray:
    return data.train.reshape(len(data.train), -1)


@pytest.mark.parametrize("rule", ["batch", "online"])
def test_training_lowers_quantization_error(digits: Dataset, rule: str) -> None:
    # sigma_conv 0.5: the default 1.0 buys order with QE, and an 8x8 map ordered that
    # tightly fits digits about as well as its initial random samples do
    som = SOM({"rule": rule, "epochs": 8, "sigma_conv": 0.5}, digits, seed=0)
    before = som_scores(som.weights(), flat(digits))
    out = som.train(8)
    after = som_scores(som.weights(), flat(digits))
    assert som.step == 8 and out == {"eta": 0.05, "sigma": 0.5}
    assert after["quantization_error"] < 0.9 * before["quantization_error"]
    # a trained map is ordered: far fewer samples with non-adjacent best two units
    assert after["topographic_error"] < 0.5 * before["topographic_error"]
    w = som.weights()
    assert w.shape == (8, 8, 64) and w.dtype == np.float32
    gen = som.gen.get_state()
    s = som.sample(5, seed=3)
    assert s.shape == (5, 1, 8, 8)
    assert torch.equal(s, som.sample(5, seed=3))  # its own generator: repeatable
    assert torch.equal(gen, som.gen.get_state())  # and the training RNG is untouched


def test_winner_is_the_closest_unit() -> None:
    # units at 0 and 10 on a 1x2 map; the sample at 1 belongs to unit 0 (argmax would say 1)
    x = np.array([[1.0, 0.0], [9.0, 0.0], [0.5, 0.0]], dtype=np.float32)
    data = Dataset("toy", "vector", x, x[:1])
    som = SOM({"rows": 1, "cols": 2, "rule": "online", "epochs": 1, "sigma0": 0.01,
               "sigma_conv": 0.01, "eta0": 0.5, "eta_conv": 0.5}, data)
    som.w = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    assert som.winners(torch.tensor([[1.0, 0.0]])).tolist() == [0]
    assert som.winners(torch.tensor(x)).tolist() == [0, 1, 0]
    som.train(1)  # each unit only moves toward its own samples (sigma ~ 0: no neighbour pull)
    w = som.w[:, 0]
    assert 0.0 < w[0] < 1.0 and 9.0 <= w[1] < 10.0


def test_neighbourhood_is_the_gaussian_of_grid_distance(digits: Dataset) -> None:
    som = SOM({"rows": 3, "cols": 5}, digits)
    a = torch.randn(15, 4, generator=torch.Generator().manual_seed(0))
    pos = torch.tensor([(r, c) for r in range(3) for c in range(5)], dtype=torch.float32)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    expected = torch.exp(-d2 / (2 * 1.5**2)) @ a
    assert torch.allclose(som._smooth(a, 1.5), expected, rtol=1e-5, atol=1e-6)


def test_schedule_phases(digits: Dataset) -> None:
    som = SOM({"epochs": 100, "eta0": 1.0, "sigma0": 4.0, "tau": 10.0,
               "eta_conv": 0.05, "sigma_conv": 0.5}, digits)
    assert som.schedule(0) == (1.0, 4.0)
    eta, sigma = som.schedule(10)
    assert eta == pytest.approx(np.exp(-1)) and sigma == pytest.approx(4 * np.exp(-1))
    assert som.schedule(74)[1] == 0.5  # decayed below the convergence radius: floored
    assert som.schedule(75) == (0.05, 0.5) == som.schedule(500)  # convergence phase, and past it
    # derived defaults: sigma0 = max(rows, cols) / 2, tau = 0.25 of the adjustment epochs
    d = SOM({"rows": 4, "cols": 10, "epochs": 40, "adjust_fraction": 0.5}, digits)
    assert d.schedule(0)[1] == 5.0 and d.schedule(5)[1] == pytest.approx(5 * np.exp(-1))


def test_resume_is_bit_for_bit_through_the_cli(tmp_path) -> None:
    # the online rule: its shuffles come from self.gen, so this also checks the saved RNG
    common = ["train", "som", "--dataset", "digits", "--set", "rule=online",
              "--set", "epochs=6", "--report-every", "2"]
    run_cli(*common, "--steps", "3", "--out", str(tmp_path / "run"))
    run_cli(*common, "--steps", "6", "--out", str(tmp_path / "run"), "--resume")
    # 6 epochs in one go, in this process (one subprocess fewer; same single thread)
    whole = build("som", "digits", {"rule": "online", "epochs": 6}, seed=0, device="cpu")
    whole.train(6)
    assert np.array_equal(np.load(tmp_path / "run" / "weights.npy"), whole.weights())
    state = torch.load(tmp_path / "run" / "checkpoint" / "state.pt", weights_only=False)
    assert state["trainer"]["step"] == 6
    assert torch.equal(state["trainer"]["weights"], whole.w)
    assert torch.equal(state["trainer"]["gen"], whole.gen.get_state())


def test_batch_rule_resumes_bit_for_bit(digits: Dataset) -> None:
    config = {"rule": "batch", "epochs": 6}
    whole = SOM(config, digits, seed=1)
    whole.train(6)
    first = SOM(config, digits, seed=1)
    first.train(3)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    second = SOM(config, digits, seed=2)  # another seed: everything must come from the state
    second.load_state_dict(torch.load(buf, weights_only=False))
    second.train(3)
    assert second.step == 6 and torch.equal(second.w, whole.w)


def test_scores_match_minisom(digits: Dataset) -> None:
    som = SOM({"rows": 6, "cols": 7, "epochs": 3}, digits)
    som.train(3)
    w, x = som.weights(), digits.held_out.reshape(len(digits.held_out), -1)
    ours = som_scores(w, x, chunk=100)  # several chunks, one of them partial
    ref = MiniSom(6, 7, 64)
    ref._weights = w.astype(np.float64)
    assert ours["quantization_error"] == pytest.approx(ref.quantization_error(x), rel=1e-6)
    assert ours["topographic_error"] == pytest.approx(ref.topographic_error(x), abs=1e-12)
    assert 0.0 < ours["topographic_error"] < 1.0  # the case exercised is not trivial
    won = {ref.winner(v) for v in x}
    assert ours["unit_utilization"] == pytest.approx(len(won) / 42)


def test_topographic_error_counts_diagonals_as_neighbours() -> None:
    # best and second-best units: diagonal (adjacent), then two apart (not adjacent)
    w = np.zeros((3, 3, 2), dtype=np.float32)
    w[0, 0], w[1, 1], w[2, 2] = (0.0, 0.0), (1.0, 0.0), (0.0, 1.0)
    w[0, 1] = w[0, 2] = w[1, 0] = w[1, 2] = w[2, 0] = w[2, 1] = (50.0, 50.0)
    x = np.array([[0.4, 0.0], [0.1, 0.45]], dtype=np.float32)
    s = som_scores(w, x)
    assert s["topographic_error"] == 0.5
    assert s["unit_utilization"] == pytest.approx(1 / 9)


def test_unknown_rule_exits_2_naming_the_choices(tmp_path) -> None:
    proc = run_cli("train", "som", "--dataset", "digits", "--set", "rule=foo", "--steps", "1",
                   "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 2
    assert all(w in proc.stderr for w in ("rule", "batch", "online")), proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("item", ["rows=0", "cols=-3", "sigma_conv=0", "epochs=0"])
def test_out_of_range_exits_2(tmp_path, capsys, item: str) -> None:
    # in-process: the same `main` the console script exits with, without a process per case
    code = main(["train", "som", "--dataset", "digits", "--set", item, "--steps", "1",
                 "--out", str(tmp_path / "run")])
    assert code == 2
    assert item.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
