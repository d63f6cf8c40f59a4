"""The conv trainers (dcgan, wgan, wgan-gp) on digits at 16x16 with tiny networks."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from gansweep.analysis.layout import STATE as STATE_FILE
from gansweep.trainers.data import load_dataset
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.registry import build
from tests.conftest import run_cli

FAMILIES = ["dcgan", "wgan", "wgan-gp"]
TINY = {"image_size": 16, "width": 8, "batch_size": 32}
# Learns within a few seconds on one core: higher rates, fewer critic steps. Over seeds 0-2
# the worst runs improved the mean/std errors 6.4x/5.2x (dcgan), 10x/6x (wgan), 25x/7x
# (wgan-gp) at these step counts. A dcgan with its generator loss's sign flipped ended with a
# worse mean error than it started with (0.38 -> 0.63), so the check tells working from broken.
LEARN = {
    "dcgan": ({"lr_g": 1e-3, "lr_d": 5e-4}, 250),
    "wgan": ({"n_critic": 2, "lr_g": 1e-3, "lr_d": 1e-3}, 150),
    "wgan-gp": ({"n_critic": 2, "lr_g": 1e-3, "lr_d": 1e-3}, 100),
}
# The resume run also covers the options the learning run leaves at their defaults.
RESUME = {"dcgan": {"loss": "minimax"}, "wgan": {"optimizer": "rmsprop", "n_critic": 2},
          "wgan-gp": {"n_critic": 2}}


def moments_error(trainer, real: torch.Tensor) -> tuple[float, float]:
    """Squared distance of the samples' per-pixel mean and std images from the real data's."""
    fake = trainer.sample(len(real), seed=1)
    return (float(((fake.mean(0) - real.mean(0)) ** 2).mean()),
            float(((fake.std(0) - real.std(0)) ** 2).mean()))


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    """Exact equality of nested checkpoint states (tensors bit for bit)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype, where
        assert torch.equal(a.cpu(), b.cpu()), f"{where} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {set(a) ^ set(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.mark.parametrize("name", FAMILIES)
def test_learns_the_pixel_statistics(name):
    settings, steps = LEARN[name]
    trainer = build(name, "digits", {**TINY, **settings})
    real = torch.as_tensor(trainer.data.held_out)
    mean0, std0 = moments_error(trainer, real)
    losses = trainer.train(steps)
    mean1, std1 = moments_error(trainer, real)
    # A fresh generator outputs ~0 everywhere; a working one draws dark background and
    # bright strokes with roughly the real spread.
    assert mean1 < mean0 / 4, (mean0, mean1)
    assert std1 < std0 / 2, (std0, std1)
    assert trainer.step == steps
    assert {"loss_g", "loss_d"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    # n_critic is honoured from step 0: Adam counts one step per update.
    n_critic = trainer.config.get("n_critic", 1)
    d_steps = {float(s["step"]) for s in trainer.opt_d.state.values()}
    g_steps = {float(s["step"]) for s in trainer.opt_g.state.values()}
    assert d_steps == {steps * n_critic} and g_steps == {steps}
    if name == "wgan":
        clip = trainer.config["clip_value"]
        assert all(p.abs().max() <= clip for p in trainer.D.parameters())
    if name == "wgan-gp":
        assert {"gp", "wasserstein"} <= set(losses)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trainer.D.modules())


@pytest.mark.parametrize("name", FAMILIES)
def test_resume_in_a_fresh_process_is_bit_for_bit(name, tmp_path):
    config = {**TINY, **RESUME[name]}
    k = 3
    whole = build(name, "digits", config)  # in this process: a third one would only cost time
    whole.train(2 * k)

    sets = [a for key, v in config.items() for a in ("--set", f"{key}={v}")]
    # Reports every 2 steps: train() in chunks, with sampling and checkpointing in between.
    args = ["train", name, "--dataset", "digits", *sets, "--report-every", "2",
            "--out", str(tmp_path / "run")]
    run_cli(*args, "--steps", str(k))
    run_cli(*args, "--steps", str(2 * k), "--resume")
    saved = torch.load(tmp_path / "run" / "checkpoint" / STATE_FILE, weights_only=False)
    assert saved["trainer"]["step"] == 2 * k
    assert_same(whole.state_dict(), saved["trainer"])


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_leaves_the_training_state_alone(name):
    config = {**TINY, **LEARN[name][0]}
    a, b = build(name, "digits", config), build(name, "digits", config)
    a.train(2)
    b.train(2)
    before = copy.deepcopy(a.state_dict())
    x = a.sample(1500, seed=3)  # more than one chunk
    assert_same(before, a.state_dict())
    assert a.G.training and a.D.training
    assert x.shape == (1500, 1, 16, 16) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.abs().max()) <= 1.0
    assert torch.equal(a.sample(7, seed=3), a.sample(7, seed=3))
    assert a.sample(0).shape == (0, 1, 16, 16)
    # And the trajectory carries on as if nothing had been drawn.
    a.train(2)
    b.train(2)
    assert_same(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("name, setting, key", [
    ("dcgan", "n_critic=3", "n_critic"),
    ("dcgan", "image_size=20", "image_size"),
])
def test_cli_refuses_settings_the_family_does_not_take(name, setting, key, tmp_path):
    proc = run_cli("train", name, "--dataset", "digits", "--set", setting, "--steps", "1",
                   "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr


@pytest.mark.parametrize("name, key, value", [
    ("wgan", "loss", "minimax"), ("wgan-gp", "clip_value", 0.1), ("dcgan", "n_critic", 3),
    ("wgan", "image_size", 20), ("wgan-gp", "width", 0),
])
def test_trainers_refuse_settings_they_do_not_take(name, key, value):
    with pytest.raises(ConfigError, match=key):
        build(name, "digits", {**TINY, key: value})


def test_cli_refuses_vector_data(tmp_path):
    proc = run_cli("train", "dcgan", "--dataset", "ring8", "--steps", "1",
                   "--out", str(tmp_path / "run"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "image data" in proc.stderr and "ring8" in proc.stderr


def test_images_of_another_size_are_refused():
    from gansweep.trainers.dcgan import DCGAN

    data = load_dataset("digits", image_size=32)
    with pytest.raises(ConfigError, match="image_size=16"):
        DCGAN({"image_size": 16}, data)
