"""Default search spaces, one define-by-run function per trainer family.

Ranges bracket the seeds' settings (DCGAN lr_g 5e-4 / lr_d 1e-4, WGAN 5e-5 with clip 0.01,
WGAN-GP lambda 10 and Adam betas (0, 0.9)). Network width, the MLP GAN's depth and image size
are not searched by default: they change the compute per step, which a spec should choose
deliberately.
"""
from __future__ import annotations

from gansweep.search_spaces import Suggester


def _common(s: Suggester, lr: tuple[float, float] = (1e-5, 1e-3)) -> None:
    s.choice("batch_size", [32, 64, 128])
    s.int("code_length", 8, 128, log=True)
    s.float("lr_g", *lr, log=True)
    s.float("lr_d", *lr, log=True)


def dcgan(s: Suggester, steps: int) -> None:
    _common(s)
    s.float("beta1", 0.0, 0.9)
    s.choice("loss", ["minimax", "nonsaturating"])


def wgan(s: Suggester, steps: int) -> None:
    _common(s)
    s.int("n_critic", 1, 10)
    s.float("clip_value", 1e-3, 0.1, log=True)
    s.choice("optimizer", ["adam", "rmsprop"])


def wgan_gp(s: Suggester, steps: int) -> None:
    _common(s)
    s.choice("beta1", [0.0, 0.5])
    s.int("n_critic", 1, 10)
    s.float("gp_lambda", 1.0, 100.0, log=True)


def gan(s: Suggester, steps: int) -> None:
    s.choice("batch_size", [32, 64, 128, 256])
    s.int("code_length", 1, 16, log=True)
    s.float("lr_g", 1e-5, 1e-2, log=True)
    s.float("lr_d", 1e-5, 1e-2, log=True)
    s.float("beta1", 0.0, 0.9)
    s.choice("loss", ["minimax", "nonsaturating"])
    # Sampling from an average of G's weights: on ring8 and grid25 it took the final hq from
    # 0.85 / 0.73 to 0.95 / 0.79 at 15000 steps and cut its swing between reports ten-fold
    # (README, "Stabilisers on the mixtures"). An average lags ~1 / (1 - decay) steps: after
    # 3000 steps 0.999 was still behind the live generator on 8 of 10 seeds, 0.99 ahead on all.
    s.choice("ema", [0.0, 0.99, 0.999] if steps >= 10000 else [0.0, 0.99])
    if s.choice("minibatch_disc", [False, True]):  # kernels only mean something with the layer
        s.int("kernels", 2, 16)
        s.int("kernel_dim", 2, 8)


def som(s: Suggester, steps: int) -> None:
    s.int("rows", 4, 20)
    s.int("cols", 4, 20)
    s.float("sigma0", 0.5, 10.0, log=True)
    s.float("eta0", 0.05, 1.0, log=True)
    s.float("adjust_fraction", 0.3, 0.9)
    # tau is in epochs: its range follows the sweep's length but stays the same for every
    # trial, so TPE sees one distribution.
    s.float("tau", max(0.05, 0.03 * steps), max(0.1, 0.45 * steps))
