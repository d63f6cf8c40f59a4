"""The stabilisers (`ema`, `pac`, `lr_half_life`, the MLP GAN's `depth`, the image families'
`augment`, DCGAN's `r1_gamma` and `r1_every`, WGAN-GP's `gp_center`): honoured from step 0,
resumable bit for bit, validated, and invisible at their neutral values."""
from __future__ import annotations

import copy
import io
import json
import os

import pytest
import torch

from gansweep.jobs.cli import main as cli_main
from gansweep.trainers.convnets import uniform_code
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import COMMON, NO_NEUTRAL, keyed, resolve
from gansweep.trainers.registry import TRAINERS, build, get_trainer
from gansweep.trainers.stabilisers import pack
from tests.conftest import run_cli
from tests.test_conv_trainers import assert_same

torch.set_num_threads(1)

GAN_FAMILIES = ["gan", "dcgan", "wgan", "wgan-gp"]
DIGITS = {"name": "digits", "image_size": 16}
TINY = {"dcgan": {"image_size": 16, "width": 8, "batch_size": 32},
        "wgan": {"image_size": 16, "width": 8, "batch_size": 32, "n_critic": 2},
        "wgan-gp": {"image_size": 16, "width": 8, "batch_size": 32, "n_critic": 2},
        "gan": {"batch_size": 16}}
NEW = {"ema": 0.0, "pac": 1, "lr_half_life": None, "depth": 2, "augment": "none",
       "r1_gamma": 0.0, "r1_every": 1, "gp_center": 1.0}


def make(family: str, seed: int = 0, **changes):
    dataset = "ring8" if family == "gan" else DIGITS
    return build(family, dataset, {**TINY[family], **changes}, seed=seed, device="cpu")


# ---- the schema -------------------------------------------------------------------------------
def test_new_hyperparameters_default_to_their_neutral_value_everywhere():
    assert {k: COMMON[k].neutral for k in NEW} == NEW
    for name in TRAINERS:
        for h in get_trainer(name).HPARAMS.values():
            if h.neutral is not NO_NEUTRAL:
                assert h.default == h.neutral, (name, h.name)
    honoured = {name: set(NEW) & set(get_trainer(name).HPARAMS) for name in TRAINERS}
    r1, gp = {"r1_gamma", "r1_every"}, {"gp_center"}
    conv = set(NEW) - {"depth"} - r1 - gp  # the WGANs' critics have their own constraint
    assert honoured == {"gan": set(NEW) - {"augment"} - r1 - gp, "dcgan": conv | r1,
                        "wgan": conv, "wgan-gp": conv | gp, "som": set()}


def test_keyed_leaves_out_exactly_the_neutral_values():
    schema = get_trainer("gan").HPARAMS
    default = resolve(schema, {}, "gan")
    assert keyed(schema, default) == {k: v for k, v in default.items() if k not in NEW}
    on = resolve(schema, {"ema": 0.999, "pac": 2, "lr_half_life": 5000, "depth": 3}, "gan")
    assert keyed(schema, on) == on
    # Only neutral values go: a hyperparameter without one stays at its default, and keys
    # the schema does not know are kept.
    assert keyed(schema, {"batch_size": 64, "ema": 0.0, "other": 1}) == {"batch_size": 64,
                                                                        "other": 1}


def test_pac_must_divide_the_batch(tmp_path, capsys):
    code = cli_main(["train", "gan", "--dataset", "ring8", "--steps", "1", "--out",
                     str(tmp_path / "run"), "--set", "pac=3", "--set", "batch_size=64"])
    assert code == 2
    err = capsys.readouterr().err
    assert "pac=3 does not divide batch_size=64" in err and "63 or 66" in err, err
    with pytest.raises(ConfigError, match="pac=4 does not divide batch_size=30"):
        make("dcgan", pac=4, batch_size=30)


def test_depth_is_only_for_the_mlp_gan():
    with pytest.raises(ConfigError, match="depth"):
        make("dcgan", depth=3)


def test_the_gan_space_offers_the_weight_average():
    import optuna

    from gansweep.search_spaces import make_space

    def offered(steps):
        space = make_space("gan", {}, {}, steps)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        return {space(study.ask())["ema"] for _ in range(30)}

    # The slow average only where a run is long enough for it to catch up.
    assert offered(2000) == {0.0, 0.99} and offered(15000) == {0.0, 0.99, 0.999}


# ---- neutral values change nothing ------------------------------------------------------------
# Recorded at commit 08e3c0f, before these hyperparameters existed (same seed 3, same chunks):
# the losses of each train() call, sample(4, seed=5) and the sums of sample(64, seed=5) and of
# |weights| of G and D. A changed trajectory (another random draw, another initialisation
# order) moves them by far more than the tolerance, which only absorbs last-bit differences
# between CPUs' float kernels.
PINNED = {
    "gan": {"losses": [[0.7000660539, 1.369753313], [0.7482822537, 1.316682124],
                       [0.855221796, 1.25019393]],
            "sample": [0.742859602, 0.0120699089, 0.7606081963, -0.01734615304, 1.31464982,
                       -0.1597570032],
            "sums": [53.49848505, 881.5133255, 879.7086601]},
    "gan-mbd": {"losses": [[1.04939748, 1.35984633], [0.8176468372, 1.242358828],
                           [0.7771058083, 1.316222787]],
                "sample": [-0.09411879629, 0.5808500051, 0.4228390157, -0.4945484996,
                           0.7374486923, -1.543526888],
                "sums": [-14.7190819, 887.697916, 1029.266553]},
    "dcgan": {"losses": [[0.7085964084, 1.395018339], [0.6893140674, 1.391883254]],
              "sample": [-0.0001558254298, -0.001246664324, -0.001433248515, 0.0002841574606,
                         -0.0002106339089, -0.0007957129274],
              "sums": [-2.568004797, 463.5228325, 53.81220537]},
    "wgan": {"losses": [[1.837702075e-05, 0.01195879094], [3.176114842e-05, -0.0002736377064]],
             "sample": [-0.0005239681923, -0.002034771722, -0.003341600765, 8.611592057e-05,
                        -4.79639275e-05, -0.001977598062],
             "sums": [-7.18254, 462.7821242, 19.22501797]},
    "wgan-gp": {"losses": [[-0.03544888645, 1.591449738], [-0.0320097208, 1.379395962]],
                "sample": [-0.0004408327804, -0.002126603154, -0.003244197927,
                           -0.0001642169809, -0.000143536774, -0.001897173934],
                "sums": [-6.602148898, 462.7305143, 294.4462222]},
}
PIN_RUNS = {"gan": ("gan", {}, 5, 3), "gan-mbd": ("gan", {"minibatch_disc": True}, 5, 3),
            "dcgan": ("dcgan", {}, 2, 2), "wgan": ("wgan", {}, 2, 2),
            "wgan-gp": ("wgan-gp", {}, 2, 2)}


@pytest.mark.parametrize("case", list(PINNED))
def test_neutral_values_train_as_before_they_existed(case):
    family, extra, k, chunks = PIN_RUNS[case]
    neutral = {n: v for n, v in NEW.items() if n in get_trainer(family).HPARAMS}
    t = make(family, seed=3, **extra, **neutral)
    losses = [t.train(k) for _ in range(chunks)]
    got = {"losses": [[r["loss_g"], r["loss_d"]] for r in losses],
           "sample": t.sample(4, seed=5).flatten()[:6].tolist(),
           "sums": [float(t.sample(64, seed=5).double().sum()),
                    float(sum(p.detach().double().abs().sum() for p in t.G.parameters())),
                    float(sum(p.detach().double().abs().sum() for p in t.D.parameters()))]}
    want = PINNED[case]
    assert sum(got["losses"], []) == pytest.approx(sum(want["losses"], []), rel=1e-5, abs=1e-8)
    assert got["sample"] == pytest.approx(want["sample"], rel=1e-4, abs=1e-7)
    assert got["sums"] == pytest.approx(want["sums"], rel=1e-6)
    # And the checkpoint holds what it held: no average of G.
    assert set(t.state_dict()) == {"step", "gen", "config", "seed", "trainer", "G", "D",
                                   "opt_g", "opt_d"}


@pytest.mark.parametrize("family", GAN_FAMILIES)
def test_checkpoints_from_before_the_new_hyperparameters_still_load(family):
    old = make(family)
    old.train(2)
    state = old.state_dict()
    state["config"] = {k: v for k, v in state["config"].items() if k not in NEW}
    fresh = make(family)
    fresh.load_state_dict(state)
    assert fresh.step == 2
    # Only at the neutral values: a run with the average on did not train that way.
    with pytest.raises(ConfigError, match="ema"):
        make(family, ema=0.9).load_state_dict(state)


# ---- honoured from step 0 ---------------------------------------------------------------------
def test_ema_is_the_bias_corrected_average_and_sample_uses_it():
    d = 0.9
    t = make("gan", ema=d)
    seen = []
    for _ in range(3):
        t.train(1)
        seen.append([p.detach().clone() for p in t.G.parameters()])
    weights = [d ** 2, d, 1.0]  # after 3 updates: sum_s d^(3-s) w_s / sum_s d^(3-s)
    for avg, *its in zip(t.G_avg.parameters(), *seen):
        want = sum(w * x for w, x in zip(weights, its)) / sum(weights)
        assert torch.allclose(avg, want, atol=1e-6)
        assert not torch.equal(avg, its[-1])
    z = t.code(50, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(t.sample(50), t.G_avg(z))
        assert not torch.allclose(t.sample(50), t.G(z))


def test_ema_starts_at_the_first_update_not_at_the_initial_weights():
    t = make("gan", ema=0.999)
    init = [p.detach().clone() for p in t.G.parameters()]
    t.train(1)
    for avg, live, p0 in zip(t.G_avg.parameters(), t.G.parameters(), init):
        assert torch.allclose(avg, live, atol=1e-7) and not torch.equal(live, p0)


@pytest.mark.parametrize("family", ["dcgan", "wgan", "wgan-gp"])
def test_ema_in_the_conv_families(family):
    from gansweep.trainers.convnets import generate

    t = make(family, ema=0.5)
    t.train(2)
    live = dict(t.G.named_buffers())
    for name, b in t.G_avg.named_buffers():  # batch-norm statistics: the live generator's
        assert torch.equal(b, live[name]), name
    params = list(zip(t.G_avg.parameters(), t.G.parameters()))
    assert all(not a.requires_grad for a, _ in params)
    assert any(not torch.equal(a, b) for a, b in params)
    args = (5, t.config["code_length"], 1, t.device, t.autocast)
    sample = t.sample(5, seed=1)
    assert t.standing == t.config["batch_size"]
    assert torch.equal(sample, generate(t.G_avg, *args, standing=t.standing))
    assert not torch.equal(sample, generate(t.G_avg, *args))  # the live G's statistics
    assert not torch.equal(sample, generate(t.G, *args))


@pytest.mark.parametrize("family", ["dcgan", "wgan-gp"])
def test_the_average_is_sampled_with_statistics_of_its_own(family):
    """Standing statistics: measured on the averaged weights when it is sampled, whatever
    its buffers hold, which sampling leaves as they were; a sample does not depend on its
    size. Without an average G is sampled with its own running statistics, as before."""
    t = make(family, ema=0.9)
    t.train(3)
    before = t.sample(6, seed=2)
    for b in t.G_avg.buffers():  # what the live G's statistics were replaced by
        if b.is_floating_point():
            b.copy_(torch.full_like(b, 7.0))
    held = {k: v.clone() for k, v in t.G_avg.named_buffers()}
    mode = t.G_avg.training
    assert torch.equal(t.sample(6, seed=2), before)
    assert torch.equal(t.sample(13, seed=2)[:6], before)
    for k, v in t.G_avg.named_buffers():
        assert torch.equal(v, held[k]), k
    assert t.G_avg.training == mode
    assert make(family).standing == 0


def test_the_average_steadies_the_scores_of_a_short_run():
    """Measured (benchmarks/stabilisers_short.py, ring8, defaults, 3000 steps, seeds 0-9): over
    the second half, the report-to-report total variation of hq_fraction is 0.24-0.52 for the
    0.99 average against 0.63-1.86 for the live generator (ratio <= 0.48 on every seed), and
    the average ends higher on every seed. Seed 0 here: 0.45 against 0.95."""
    from gansweep.analysis.metrics import score

    t = build("gan", "ring8", {"ema": 0.99}, seed=0, device="cpu")
    z = t.code(2500, torch.Generator().manual_seed(0))
    hq: dict[str, list[float]] = {"live": [], "average": []}
    for _ in range(30):
        t.train(100)
        with torch.no_grad():
            for name, net in (("live", t.G), ("average", t.G_avg)):
                hq[name].append(score(net(z).numpy(), t.data)["hq_fraction"])

    def variation(xs):
        return sum(abs(b - a) for a, b in zip(xs[15:], xs[16:]))

    assert variation(hq["average"]) < 0.75 * variation(hq["live"]), hq
    assert hq["average"][-1] > hq["live"][-1], hq


def test_pack_joins_consecutive_samples():
    x = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(pack(x, 2), torch.tensor([[0.0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]))
    images = torch.randn(6, 2, 4, 4)
    packed = pack(images, 3)
    assert packed.shape == (2, 6, 4, 4)
    assert torch.equal(packed[1, 2:4], images[4]) and pack(images, 1) is images


@pytest.mark.parametrize("family, pac", [("gan", 4), ("dcgan", 2), ("wgan", 4),
                                         ("wgan-gp", 2)])
def test_pac_is_what_the_discriminator_sees(family, pac):
    t = make(family, pac=pac)
    first = next(m for m in t.D.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    dim = 2 if family == "gan" else 1  # ring8 points, digits' one channel
    assert (first.in_features if family == "gan" else first.in_channels) == pac * dim
    shapes = []
    hook = t.D.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape)))
    t.train(1)
    hook.remove()
    n = t.config["batch_size"]
    assert shapes and {s[:2] for s in shapes} == {(n // pac, pac * dim)}, shapes


def test_r1_penalty_is_the_mean_squared_gradient_at_each_real_image():
    from gansweep.trainers.dcgan import r1_penalty

    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    w = torch.randn(16, generator=torch.Generator().manual_seed(1))
    assert float(r1_penalty(x.flatten(1) @ w, x)) == pytest.approx(float(w.square().sum()))
    # per image: D(x) = |x|^2 / 2 has gradient x there
    got = r1_penalty(0.5 * x.flatten(1).square().sum(1), x)
    assert float(got.detach()) == pytest.approx(float(x.detach().flatten(1).square().sum(1).mean()))
    got.backward()  # differentiable, as D's update needs
    assert torch.allclose(x.grad, 2 * x.detach() / len(x))


def test_r1_gamma_flattens_the_discriminator_at_the_real_images():
    """From one seed, D trained with a strong penalty has a far smaller gradient at real images
    than without it; the penalty is reported only when on."""
    from gansweep.trainers.dcgan import r1_penalty

    def gradient_at_real(trainer) -> float:
        seen = trainer.judged(trainer.batch(32)).requires_grad_(True)
        return float(r1_penalty(trainer.D(seen).float(), seen).detach())

    # a fast D, so 30 steps move it far (measured: 0.003 against 0.92)
    off, on = make("dcgan", seed=2, lr_d=1e-3), make("dcgan", seed=2, lr_d=1e-3, r1_gamma=100.0)
    assert "r1" not in off.train(30) and "r1" in on.train(30)
    assert gradient_at_real(on) < 0.05 * gradient_at_real(off)


def test_lazy_r1_is_the_penalty_times_r1_every_on_every_r1_every_th_step_only():
    """Step 0 with `r1_every` 2 is step 0 with twice the weight every step; step 1 is the
    unpenalised step, bit for bit (their states differ only in the config they hold)."""
    def state(t):
        return {k: v for k, v in t.state_dict().items() if k != "config"}

    lazy, heavy = make("dcgan", seed=3, r1_gamma=0.5, r1_every=2), make("dcgan", seed=3,
                                                                       r1_gamma=1.0)
    assert "r1" in lazy.train(1) and "r1" in heavy.train(1)
    assert_same(state(lazy), state(heavy))
    plain = make("dcgan", seed=3)
    # a copy: Adam's loaded moments would otherwise be the very tensors lazy's step updates
    plain.load_state_dict(copy.deepcopy({**lazy.state_dict(),
                                         "config": plain.state_dict()["config"]}))
    assert "r1" not in lazy.train(1)  # no penalty taken in this call: none reported
    plain.train(1)
    assert_same(state(lazy), state(plain))
    heavy.train(1)
    assert any(not torch.equal(a, b) for a, b in zip(heavy.D.parameters(),
                                                    lazy.D.parameters()))


@pytest.mark.parametrize("center", [0.0, 0.5, 1.0])
def test_gp_center_is_the_norm_the_critic_gradient_is_pulled_to(center):
    """The penalty of the same draw, computed here from the critic's gradient directly."""
    t = make("wgan-gp", seed=4, gp_center=center)
    real = t.judged(t.batch(32))
    fake = t.judged(t.G(uniform_code(t.gen, 32, t.config["code_length"], "cpu"))).detach()
    drawn = t.gen.get_state()
    got = t.penalty(real, fake)
    t.gen.set_state(drawn)
    eps = torch.rand(32, 1, 1, 1, generator=t.gen)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(t.D(x_hat).sum(), x_hat)
    norm = grad.flatten(1).norm(dim=1)
    assert float(got.detach()) == pytest.approx(float((norm - center).square().mean()), rel=1e-5)
    got.backward()  # it trains: a finite gradient for every critic weight
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in t.D.parameters())


@pytest.mark.parametrize("family", GAN_FAMILIES)
def test_lr_half_life_sets_both_rates_from_step_0(family):
    h = 3.0
    t = make(family, lr_half_life=h)
    for k in range(1, 5):
        t.train(1)
        # The last step taken was step k - 1 (0-based): its rates were lr * 0.5^((k-1)/h).
        f = 0.5 ** ((k - 1) / h)
        assert t.opt_g.param_groups[0]["lr"] == pytest.approx(t.config["lr_g"] * f, rel=1e-12)
        assert t.opt_d.param_groups[0]["lr"] == pytest.approx(t.config["lr_d"] * f, rel=1e-12)


def test_lr_half_life_is_what_adam_steps_with():
    """After 60 half-lives the rates are 1e-18 of their start: the weights stop moving."""
    def moved(t):
        before = [p.detach().clone() for p in t.G.parameters()]
        t.train(5)
        return max(float((p.detach() - b).abs().max()) for p, b in zip(t.G.parameters(), before))

    decayed, constant = make("gan", lr_half_life=1.0), make("gan")
    decayed.train(60)
    constant.train(60)
    assert moved(decayed) < 1e-12 < 1e-4 < moved(constant)


def test_depth_sets_the_hidden_layers():
    t = make("gan", depth=4)
    linears = [m for m in t.G.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 5 and [m.out_features for m in linears] == [128] * 4 + [2]
    assert len([m for m in t.D.features if isinstance(m, torch.nn.Linear)]) == 4
    t.train(2)
    shallow = make("gan", depth=1)
    assert len([m for m in shallow.G if isinstance(m, torch.nn.Linear)]) == 2


# ---- resume ----------------------------------------------------------------------------------
ALL_ON = {"ema": 0.99, "pac": 2, "lr_half_life": 20.0}


def test_resume_with_every_stabiliser_on_is_bit_for_bit(tmp_path):
    """Through the real `gansweep train ... --resume` command, in fresh processes."""
    config = {**ALL_ON, "depth": 3, "minibatch_disc": True, "batch_size": 16}
    sets = [a for k, v in config.items() for a in ("--set", f"{k}={v}")]
    args = ["train", "gan", "--dataset", "ring8", "--report-every", "25", *sets,
            "--out", str(tmp_path / "run")]
    run_cli(*args, "--steps", "50")
    run_cli(*args, "--steps", "100", "--resume")
    once = make("gan", **config)
    once.train(50)
    once.sample(2500)  # as a report would: sampling must not disturb the trajectory
    once.train(50)
    resumed = torch.load(tmp_path / "run" / "checkpoint" / "state.pt",
                         weights_only=False)["trainer"]
    assert "G_avg" in resumed and resumed["step"] == 100
    assert_same(once.state_dict(), resumed)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert {k: recorded[k] for k in config} == config


@pytest.mark.parametrize("family", ["dcgan", "wgan", "wgan-gp"])
def test_conv_resume_with_every_stabiliser_on_is_bit_for_bit(family):
    on = {**ALL_ON, "augment": "color,translation,cutout",  # its draws come from the state too
          # lazy R1 on steps 0 and 3: the resumed half must take it at 3 from the state's count
          **({"r1_gamma": 1.0, "r1_every": 3} if family == "dcgan" else {}),
          **({"gp_center": 0.0} if family == "wgan-gp" else {})}
    once = make(family, **on)
    once.train(4)
    half = make(family, **on)
    half.train(2)
    buf = io.BytesIO()
    torch.save(half.state_dict(), buf)
    buf.seek(0)
    resumed = make(family, **on)
    resumed.train(1)  # moved on: everything must come back from the state
    resumed.load_state_dict(torch.load(buf, weights_only=False))
    resumed.train(2)
    assert_same(once.state_dict(), resumed.state_dict())


def test_a_configuration_keeps_its_key_when_hyperparameters_are_added():
    """The key of a configuration resolved before ema/pac/lr_half_life/depth existed (fixed
    literally here, as 08e3c0f computed it) is the key of the same configuration now, whose
    resolved form holds those four at their neutral values."""
    from gansweep.analysis.layout import trial_key
    from gansweep.trainers.registry import resolve_config

    old = {"amp": False, "batch_size": 64, "beta1": 0.5, "beta2": 0.999, "code_length": 2,
           "kernel_dim": 3, "kernels": 5, "loss": "nonsaturating", "lr_d": 0.001,
           "lr_g": 0.001, "minibatch_disc": False, "width": 128}
    now = resolve_config("gan", "ring8", {})
    assert set(now) - set(old) == {"ema", "pac", "lr_half_life", "depth"}
    import hashlib
    import json

    blob = json.dumps({"trainer": "gan", "dataset": "ring8", "config": old, "seed": 0,
                       "steps": 100}, sort_keys=True, default=str)  # 08e3c0f's formula
    before = hashlib.sha1(blob.encode()).hexdigest()[:16]
    assert trial_key("gan", "ring8", now, 0, 100) == before
    assert trial_key("gan", "ring8", {**now, "ema": 0.99}, 0, 100) != before


def test_r1_cost_times_the_digits_dcgan_answer_with_and_without_the_penalty(tmp_path):
    """benchmarks/r1_cost.py: the search's answer (not the defaults), the four arms timed;
    the double backward costs more CPU than the plain step, and less taken lazily."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "r1.json"
    subprocess.run([sys.executable, "benchmarks/r1_cost.py", "--rounds", "1", "--steps", "2",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=300,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    got = json.loads(out.read_text())
    assert got["config"]["width"] == 64 and got["config"]["batch_size"] == 128
    assert set(got["arms"]) == {"off", "every step", "every 4", "every 16"}
    assert got["cpu_ratio"] > 1.0 and got["lazy_cpu_ratio"]["16"] < got["cpu_ratio"]
