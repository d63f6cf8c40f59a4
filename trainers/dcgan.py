"""DCGAN (Radford et al. 2016): conv generator and discriminator, sigmoid cross-entropy.

Follows PyTorch's examples/dcgan step for step: one discriminator update on a real and a fake
batch, then one generator update through the updated discriminator on the same fake batch.
The stabilisers (`ema`, `pac`, `lr_half_life`; trainers/stabilisers.py), `augment`
(trainers/augment.py) and the R1 penalty on D (`r1_gamma`, lazily with `r1_every`) are off by
default.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from gansweep.trainers.base import TwoPlayer
from gansweep.trainers.convnets import build_pair, generate, means, uniform_code
from gansweep.trainers.data import Dataset
from gansweep.trainers.hparams import pick


class DCGAN(TwoPlayer):
    name = "dcgan"
    data_kinds = ("image",)
    HPARAMS = pick("batch_size", "code_length", "lr_g", "lr_d", "beta1", "beta2", "loss",
                   "image_size", "width", "ema", "pac", "lr_half_life", "augment", "r1_gamma",
                   "r1_every", "amp", width=32)

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(config, data, device, seed)
        c = self.config
        self.G, self.D = build_pair(self, "batch")
        betas = (c["beta1"], c["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c["lr_d"], betas=betas)
        self.start_average()

    def train(self, steps: int) -> dict[str, float]:
        G, D, c = self.G, self.D, self.config
        n, minimax, gamma, every = (c["batch_size"], c["loss"] == "minimax", c["r1_gamma"],
                                    c["r1_every"])
        losses: dict[str, list[torch.Tensor]] = {"loss_g": [], "loss_d": [],
                                                 **({"r1": []} if gamma else {})}
        for _ in range(steps):
            # the step counter is in the checkpoint, so a resumed run penalises the same steps
            r1 = gamma * every if gamma and self.step % every == 0 else 0.0
            self.decay_lrs()
            real = self.batch(n)
            z = uniform_code(self.gen, n, c["code_length"], self.device)

            # Discriminator: real -> 1, fake -> 0, in separate batches (separate BN stats).
            with self.autocast():
                fake = G(z)
                seen = self.judged(real)
                if r1:  # the penalty is on D's gradient at what it judges (augmented, packed)
                    seen = seen.detach().float().requires_grad_(True)
                d_real = D(seen).float()
                d_fake = D(self.judged(fake.detach())).float()
                loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                          + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
            self.opt_d.zero_grad(set_to_none=True)
            if r1:
                penalty = r1_penalty(d_real, seen)
                (loss_d + 0.5 * r1 * penalty).backward()
                losses["r1"].append(penalty.detach())
            else:
                loss_d.backward()
            self.opt_d.step()

            # Generator. On logits l = log D/(1-D): minimax log(1 - D) = -softplus(l),
            # non-saturating -log D = softplus(-l); softplus keeps both finite.
            with self.autocast():
                logit = D(self.judged(fake)).float()
                loss_g = -F.softplus(logit).mean() if minimax else F.softplus(-logit).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            self.update_average()

            losses["loss_g"].append(loss_g.detach())
            losses["loss_d"].append(loss_d.detach())
            self.step += 1
        return means(losses)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return generate(self.sampler, n, self.config["code_length"], seed, self.device,
                        self.autocast, standing=self.standing)


def r1_penalty(logits: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """E|grad_x D(x)|^2 over the real images `seen` (which require grad) D gave `logits`:
    the R1 regulariser of Mescheder et al. 2018, differentiable for D's update."""
    (grad,) = torch.autograd.grad(logits.sum(), seen, create_graph=True)
    return grad.float().flatten(1).square().sum(1).mean()
