"""WGAN with weight clipping (Arjovsky et al. 2017): a critic instead of a classifier.

The critic is the DCGAN discriminator without the sigmoid (batch norm kept, as the seed's);
its weights are clipped to [-clip_value, clip_value] after every update so it stays roughly
Lipschitz. One `train` step is one generator step after `n_critic` critic steps, from step 0
(no warm-up schedule, so `n_critic` means what it says).
"""
from __future__ import annotations

from typing import Any

import torch

from gansweep.trainers.base import TwoPlayer
from gansweep.trainers.convnets import build_pair, generate, means, uniform_code
from gansweep.trainers.data import Dataset
from gansweep.trainers.hparams import pick


class WGAN(TwoPlayer):
    name = "wgan"
    data_kinds = ("image",)
    HPARAMS = pick("batch_size", "code_length", "lr_g", "lr_d", "beta1", "beta2", "n_critic",
                   "clip_value", "optimizer", "image_size", "width", "ema", "pac",
                   "lr_half_life", "augment", "amp",
                   lr_g=5e-5, lr_d=5e-5, beta1=0.5, beta2=0.9, width=32)

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(config, data, device, seed)
        c = self.config
        self.G, self.D = build_pair(self, "batch")
        if c["optimizer"] == "rmsprop":  # the WGAN paper's choice: no momentum
            self.opt_g = torch.optim.RMSprop(self.G.parameters(), lr=c["lr_g"])
            self.opt_d = torch.optim.RMSprop(self.D.parameters(), lr=c["lr_d"])
        else:
            betas = (c["beta1"], c["beta2"])
            self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c["lr_g"], betas=betas)
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c["lr_d"], betas=betas)
        self.start_average()

    def train(self, steps: int) -> dict[str, float]:
        G, D, c = self.G, self.D, self.config
        n, clip = c["batch_size"], c["clip_value"]
        losses: dict[str, list[torch.Tensor]] = {"loss_g": [], "loss_d": []}
        for _ in range(steps):
            self.decay_lrs()  # per generator step: the critic's n_critic updates share it
            # Critic: maximise E[D(real)] - E[D(fake)], i.e. minimise its negative.
            for _ in range(c["n_critic"]):
                real = self.batch(n)
                z = uniform_code(self.gen, n, c["code_length"], self.device)
                with self.autocast():
                    with torch.no_grad():
                        fake = G(z)
                    loss_d = (D(self.judged(fake)).float().mean()
                              - D(self.judged(real)).float().mean())
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                self.opt_d.step()
                with torch.no_grad():
                    for p in D.parameters():
                        p.clamp_(-clip, clip)
                losses["loss_d"].append(loss_d.detach())

            # Generator: minimise -E[D(G(z))].
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
