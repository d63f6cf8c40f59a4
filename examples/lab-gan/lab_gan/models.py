"""The lab's GAN: a hinge-loss GAN (Lim & Ye 2017; Miyato et al. 2018) whose discriminator has
spectral normalisation on every layer and whose generator is a stack of residual MLP blocks --
an architecture none of gansweep's built-in families has.

It follows gansweep's trainer contract (`gansweep.Trainer`, through `gansweep.TwoPlayer`, which
checkpoints G, D and both optimisers with the step and the training RNG): what it declares is
read by gansweep, which then gives it everything a built-in family gets -- a search space from
the `search` ranges of its HPARAMS, racing over seeds, collapse stopping on its
COLLAPSE_SIGNAL, budgets, bit-for-bit resume, reports.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from gansweep import HParam, TwoPlayer


class Residual(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(h + self.body(h))


def generator(code: int, width: int, blocks: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(code, width), nn.ReLU(),
                         *[Residual(width) for _ in range(blocks)], nn.Linear(width, dim))


def discriminator(dim: int, width: int) -> nn.Sequential:
    return nn.Sequential(spectral_norm(nn.Linear(dim, width)), nn.LeakyReLU(0.2),
                         spectral_norm(nn.Linear(width, width)), nn.LeakyReLU(0.2),
                         spectral_norm(nn.Linear(width, 1)))


class HingeGAN(TwoPlayer):
    name = "hinge-gan"
    data_kinds = ("vector",)
    HPARAMS = {h.name: h for h in [
        HParam("batch_size", int, 128, low=8, high=4096, search={"choices": [64, 128, 256]}),
        HParam("code_length", int, 4, low=1, high=64, search={"low": 2, "high": 16, "log": True}),
        HParam("lr_g", float, 2e-4, low=0.0, high=1.0,
               search={"low": 5e-5, "high": 2e-3, "log": True}),
        HParam("lr_d", float, 2e-4, low=0.0, high=1.0,
               search={"low": 5e-5, "high": 2e-3, "log": True}),
        HParam("width", int, 64, low=8, high=1024),
        HParam("blocks", int, 2, low=1, high=8, search={"low": 1, "high": 4}),
    ]}
    # mode_diversity is coverage on data without known modes: under 0.25 most of the spiral
    # is left uncovered (gansweep's own default, stated here as a group would)
    COLLAPSE_SIGNAL = "mode_diversity"
    COLLAPSE_THRESHOLD = 0.25

    def __init__(self, config: dict[str, Any], data, device="cpu", seed: int = 0):
        super().__init__(config, data, device, seed)
        c, dim = self.config, data.shape[0]
        self.G = generator(c["code_length"], c["width"], c["blocks"], dim).to(self.device)
        self.D = discriminator(dim, c["width"]).to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c["lr_g"], betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c["lr_d"], betas=(0.0, 0.9))

    def code(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config["code_length"], generator=self.gen).to(self.device)

    def train(self, steps: int) -> dict[str, float]:
        n = self.config["batch_size"]
        for _ in range(steps):
            real, fake = self.batch(n), self.G(self.code(n)).detach()
            loss_d = F.relu(1 - self.D(real)).mean() + F.relu(1 + self.D(fake)).mean()
            self.opt_d.zero_grad()
            loss_d.backward()
            self.opt_d.step()
            loss_g = -self.D(self.G(self.code(n))).mean()
            self.opt_g.zero_grad()
            loss_g.backward()
            self.opt_g.step()
            self.step += 1
        return {"loss_g": float(loss_g.detach()), "loss_d": float(loss_d.detach())}

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        z = torch.randn(n, self.config["code_length"],
                        generator=torch.Generator().manual_seed(seed))
        return self.G(z.to(self.device))
