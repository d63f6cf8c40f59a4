"""Checkpoints load as tensors and plain values only (torch.load weights_only=True): every state
the trainers, the collapse detector and the history save loads back and resumes exactly, and a
planted file that would run code is refused without running it."""
from __future__ import annotations

import io
import math

import pytest
import torch

from gansweep.analysis.layout import UnsafeCheckpoint, load_checkpoint
from gansweep.jobs.collapse import CollapseRule
from gansweep.trainers.registry import build
from tests.conftest import run_cli
from tests.faults import planted_checkpoint, runs_code_when_fully_unpickled

FAMILIES = [
    ("gan", "ring8", {"width": 8, "minibatch_disc": True}),
    ("dcgan", {"name": "digits", "image_size": 8}, {"width": 4}),
    ("wgan", {"name": "digits", "image_size": 8}, {"width": 4, "optimizer": "rmsprop"}),
    ("wgan", {"name": "digits", "image_size": 8}, {"width": 4, "optimizer": "adam"}),
    ("wgan-gp", {"name": "digits", "image_size": 8}, {"width": 4, "n_critic": 2}),
    ("som", "digits", {"rows": 3, "cols": 3}),
]


@pytest.mark.parametrize("trainer, dataset, config", FAMILIES,
                         ids=[f"{t}-{c.get('optimizer', '')}" for t, _, c in FAMILIES])
def test_every_trainer_state_loads_weights_only_and_resumes_exactly(trainer, dataset, config):
    """What a trial checkpoints (jobs/trial.py): the trainer's state (networks, optimisers,
    step, torch.Generator), the history rows (floats, ints, bools, None, inf and nan) and the
    collapse detector's window."""
    first = build(trainer, dataset, config, seed=3, steps=4)
    first.train(2)
    detector = CollapseRule(threshold=0.5, patience=2, grace_steps=0).detector()
    history = [{"step": 1, "loss_g": 0.5, "fid": None, "collapsed": False, "diverged": False,
                "mode_diversity": 0.1},
               {"step": 2, "loss_g": math.inf, "fid": math.nan, "collapsed": True,
                "mode_diversity": 0.25}]
    for row in history:
        detector.update(row)
    buf = io.BytesIO()
    torch.save({"trainer": first.state_dict(), "history": history,
                "detector": detector.state_dict()}, buf)
    saved = load_checkpoint(buf.getvalue(), "state.pt")
    assert saved["history"][0] == history[0] and math.isnan(saved["history"][1]["fid"])
    assert saved["detector"] == detector.state_dict() and saved["detector"]["below"] == 2
    second = build(trainer, dataset, config, seed=3, steps=4)
    second.load_state_dict(saved["trainer"])
    assert first.train(2) == second.train(2)  # the same losses: RNG and optimisers restored
    assert torch.equal(first.sample(8), second.sample(8))


def test_train_resume_refuses_a_planted_checkpoint(tmp_path):
    out = tmp_path / "run"
    run_cli("train", "gan", "--dataset", "ring8", "--steps", "4", "--report-every", "2",
            "--set", "width=8", "--out", str(out))
    marker = tmp_path / "code-ran"
    planted = planted_checkpoint(marker)
    assert runs_code_when_fully_unpickled(planted, marker)  # the plant is real
    (out / "checkpoint" / "state.pt").write_bytes(planted)
    proc = run_cli("train", "gan", "--dataset", "ring8", "--steps", "8", "--report-every", "2",
                   "--set", "width=8", "--out", str(out), "--resume", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "refused without running it" in proc.stderr and "state.pt" in proc.stderr
    assert "weights_only=False" not in proc.stderr  # torch's advice is not passed on
    assert not marker.exists()


def test_torn_checkpoint_is_unreadable_not_unsafe():
    with pytest.raises(UnsafeCheckpoint, match="is unreadable"):
        load_checkpoint(b"\x00garbage" * 100, "state.pt")
