"""WGAN-GP (Gulrajani et al. 2017): a critic kept 1-Lipschitz by a gradient penalty.

The penalty pushes the critic's gradient norm towards 1 (`gp_center`; 0 is the zero-centred
penalty of Thanh-Tung et al. 2019) at random points between real and fake images. It is
per-sample, so the critic has no batch norm (layer norm over (C, H, W) instead, as the paper
suggests). Reports `loss_d = -wasserstein + gp_lambda * gp`, with
`wasserstein` = E[D(real)] - E[D(fake)] and `gp` = E[(|grad D(x_hat)| - gp_center)^2],
unweighted.
"""
from __future__ import annotations

from typing import Any

import torch

from gansweep.trainers.base import TwoPlayer
from gansweep.trainers.convnets import build_pair, generate, means, uniform_code
from gansweep.trainers.data import Dataset
from gansweep.trainers.hparams import pick


class WGANGP(TwoPlayer):
    name = "wgan-gp"
    data_kinds = ("image",)
    HPARAMS = pick("batch_size", "code_length", "lr_g", "lr_d", "beta1", "beta2", "n_critic",
                   "gp_lambda", "gp_center", "image_size", "width", "ema", "pac",
                   "lr_half_life", "augment", "amp",
                   lr_g=1e-4, lr_d=1e-4, beta1=0.0, beta2=0.9, width=32)

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(config, data, device, seed)
        c = self.config
        self.G, self.D = build_pair(self, "layer")
        betas = (c["beta1"], c["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c["lr_d"], betas=betas)
        self.start_average()

    def penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """E[(|grad D(x_hat)| - gp_center)^2] at x_hat uniformly between paired real and fake
        images (packs, with `pac` > 1: the critic's input is the pack, so is its gradient's).

        Run in float32 outside autocast: a bf16 gradient norm is too coarse to hold near 1.
        """
        eps = torch.rand(len(real), 1, 1, 1, generator=self.gen).to(self.device)
        x_hat = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(x_hat).sum(), x_hat, create_graph=True)
        center = self.config["gp_center"]
        if center == 0.0:  # |g|^2 directly: the square root has no gradient where g = 0
            return grad.flatten(1).square().sum(dim=1).mean()
        return (grad.flatten(1).norm(dim=1) - center).square().mean()

    def train(self, steps: int) -> dict[str, float]:
        G, D, c = self.G, self.D, self.config
        n = c["batch_size"]
        losses: dict[str, list[torch.Tensor]] = {"loss_g": [], "loss_d": [], "gp": [],
                                                 "wasserstein": []}
        for _ in range(steps):
            self.decay_lrs()  # per generator step: the critic's n_critic updates share it
            for _ in range(c["n_critic"]):
                real = self.judged(self.batch(n))
                z = uniform_code(self.gen, n, c["code_length"], self.device)
                with self.autocast():
                    with torch.no_grad():
                        fake = self.judged(G(z))
                    wasserstein = D(real).float().mean() - D(fake).float().mean()
                gp = self.penalty(real, fake)
                loss_d = -wasserstein + c["gp_lambda"] * gp
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()
                losses["loss_d"].append(loss_d.detach())
                losses["gp"].append(gp.detach())
                losses["wasserstein"].append(wasserstein.detach())

            z = uniform_code(self.gen, n, c["code_length"], self.device)
            with self.autocast():
                loss_g = -D(self.judged(G(z))).float().mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            self.update_average()
            losses["loss_g"].append(loss_g.detach())
            self.step += 1
        return means(losses)

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        return generate(self.sampler, n, self.config["code_length"], seed, self.device,
                        self.autocast, standing=self.standing)
