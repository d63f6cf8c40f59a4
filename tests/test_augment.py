"""`augment` (DiffAugment): what each policy does to an image, that gradients pass through it,
that the image families apply it to everything D judges, and that `none` draws nothing."""
from __future__ import annotations

import pytest
import torch

from gansweep.jobs.cli import main as cli_main
from gansweep.trainers.augment import augment, cutout, translation
from gansweep.trainers.hparams import COMMON
from tests.test_stabilisers import make

torch.set_num_threads(1)


def _images(n: int = 64, side: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, side, side, generator=torch.Generator().manual_seed(1)) + 1.0


def test_translation_shifts_each_image_by_whole_pixels_within_an_eighth_of_its_side():
    x = _images()
    y = translation(x, torch.Generator().manual_seed(0))
    shifts = []
    for a, b in zip(x[:, 0], y[:, 0]):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(b, _shifted(a, dy, dx))]
        assert len(found) == 1
        shifts.append(found[0])
    assert len(set(shifts)) > 10  # drawn per image


def _shifted(a: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """`a` read at (i + dy, j + dx), zero outside."""
    h, w = a.shape
    out = torch.zeros_like(a)
    for i in range(h):
        for j in range(w):
            if 0 <= i + dy < h and 0 <= j + dx < w:
                out[i, j] = a[i + dy, j + dx]
    return out


def test_cutout_blanks_one_square_of_at_most_half_the_side_and_leaves_the_rest():
    x = _images()  # every pixel >= 1, so a zero is a blanked pixel
    y = cutout(x, torch.Generator().manual_seed(0))
    for a, b in zip(x[:, 0], y[:, 0]):
        blank = b == 0
        rows, cols = blank.any(1).nonzero().flatten(), blank.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 8 and 0 < len(cols) <= 8
        assert blank.sum() == len(rows) * len(cols)  # one rectangle, clipped at the edges
        assert torch.equal(b[~blank], a[~blank])
    assert (y == 0).flatten(1).sum(1).float().mean() > 30  # mostly whole 8x8 squares


def test_gradients_pass_through_every_policy():
    x = _images(8).requires_grad_(True)
    for policy in COMMON["augment"].choices[1:]:
        x.grad = None
        augment(x, policy, torch.Generator().manual_seed(0)).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, policy


def test_none_is_the_image_itself_and_draws_nothing():
    x, gen = _images(), torch.Generator().manual_seed(0)
    before = gen.get_state()
    assert augment(x, "none", gen) is x
    assert torch.equal(gen.get_state(), before)


@pytest.mark.parametrize("family", ["dcgan", "wgan", "wgan-gp"])
def test_the_image_families_train_on_augmented_inputs_reproducibly(family):
    def trained(policy: str):
        t = make(family, augment=policy)
        seen: list[torch.Tensor] = []
        t.D.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
        t.train(2)
        return t, seen

    plain, seen_plain = trained("none")
    aug, seen_aug = trained("translation,cutout")
    again, _ = trained("translation,cutout")
    # cutout leaves exact zeros in what D judges, real images included (digits are in [-1, 1]
    # and have none)
    zeros = [float((x == 0).float().mean()) for x in seen_aug]
    assert min(zeros) > 0.1 and max(float((x == 0).float().mean()) for x in seen_plain) < 0.01
    g = lambda t: torch.cat([p.detach().flatten() for p in t.G.parameters()])  # noqa: E731
    assert torch.equal(g(aug), g(again)) and not torch.equal(g(aug), g(plain))


def test_a_bad_policy_is_refused_with_the_ones_there_are(tmp_path, capsys):
    code = cli_main(["train", "dcgan", "--dataset", "digits", "--steps", "1", "--out",
                     str(tmp_path / "run"), "--set", "augment=flip"])
    assert code == 2
    err = capsys.readouterr().err
    assert "augment='flip' is not valid" in err and "translation,cutout" in err, err
    assert not (tmp_path / "run").exists()


def test_the_probe_trains_each_arm_once_and_tables_them(tmp_path):
    """benchmarks/augment_probe.py: the DCGAN search's answer with each policy, through the
    real `gansweep train`; a second call reads the finished runs instead of training again."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    args = [sys.executable, "benchmarks/augment_probe.py", "--policies", "none", "translation",
            "--steps", "10", "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "p.json")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    csvs = sorted((tmp_path / "runs").glob("*/metrics.csv"))
    before = [p.stat().st_mtime_ns for p in csvs]
    out = subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True,
                         timeout=300).stdout
    assert [p.stat().st_mtime_ns for p in csvs] == before and len(csvs) == 2
    runs = json.loads((tmp_path / "p.json").read_text())["runs"]
    assert [(r["policy"], r["config"]["augment"], r["reports"][-1]["step"]) for r in runs] == \
        [("none", "none", 10), ("translation", "translation", 10)]
    assert all(r["config"]["width"] == 64 for r in runs)  # the search's answer, not defaults
    assert "| `translation` | 0 |" in out
    longer = [a if a != "10" else "20" for a in args]  # a shorter run there is continued
    subprocess.run(longer, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    runs = json.loads((tmp_path / "p.json").read_text())["runs"]
    assert [[r["step"] for r in arm["reports"]] for arm in runs] == [[10, 20], [10, 20]]
