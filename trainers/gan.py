"""The MLP GAN for 1-D and 2-D toy data (gauss1d, ring8, grid25, any (N, D) array).

Generator and discriminator are small MLPs (Goodfellow et al. 2014) with `depth` hidden
layers; D can end in a minibatch-discrimination layer (Salimans et al. 2016), the 1-D toy GAN
article's remedy for a generator that puts every sample on one point, and can judge `pac`
samples at once (PacGAN's packing: their feature vectors concatenated). One step = one D step +
one G step.
"""
from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gansweep.trainers.base import TwoPlayer, mean_losses
from gansweep.trainers.data import Dataset
from gansweep.trainers.hparams import pick


class MinibatchDiscrimination(nn.Module):
    """Appends, per kernel b, o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1).

    Self is excluded (the j = i term is always exp(0) = 1 and carries no information), so a
    batch of identical samples gives o = N - 1 per kernel and a spread-out batch gives ~0:
    D sees directly whether the generator's batch has collapsed.
    """

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        # Small init keeps the L1 distances O(1) at the start, where exp(-d) still has gradient.
        self.T = nn.Parameter(0.1 * torch.randn(in_features, kernels * kernel_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = (h @ self.T).view(len(h), self.kernels, self.kernel_dim).transpose(0, 1)
        # cdist per kernel: memory O(kernels * N^2), not O(N^2 * kernels * kernel_dim).
        c = torch.exp(-torch.cdist(m.float(), m.float(), p=1))  # (kernels, N, N)
        o = c.sum(dim=2).transpose(0, 1) - 1.0  # drop the self term
        return torch.cat([h, o.to(h.dtype)], dim=1)


def generator(code_length: int, width: int, dim: int, depth: int = 2) -> nn.Sequential:
    """`depth` ReLU hidden layers; a linear output, so G can reach any point of data space."""
    sizes = [code_length, *[width] * depth, dim]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    def __init__(self, dim: int, width: int, mbd: tuple[int, int] | None, depth: int = 2):
        super().__init__()
        sizes = [dim, *[width] * depth]
        self.features = nn.Sequential(*itertools.chain.from_iterable(
            (nn.Linear(a, b), nn.LeakyReLU(0.2)) for a, b in itertools.pairwise(sizes)))
        self.mbd = MinibatchDiscrimination(width, *mbd) if mbd else None
        self.logit = nn.Linear(width + (mbd[0] if mbd else 0), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if self.mbd is not None:
            h = self.mbd(h)
        return self.logit(h).squeeze(1)


class MLPGAN(TwoPlayer):
    name = "gan"
    data_kinds = ("vector",)
    # Toy-data defaults: a code as small as the data (2), 128 hidden units, and both learning
    # rates at 1e-3 (the image families' 5e-4 / 1e-4 take several times longer on ring8).
    HPARAMS = pick("batch_size", "code_length", "lr_g", "lr_d", "beta1", "beta2", "loss",
                   "width", "depth", "minibatch_disc", "kernels", "kernel_dim", "ema", "pac",
                   "lr_half_life", "amp", code_length=2, lr_g=1e-3, lr_d=1e-3, width=128)

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(config, data, device, seed)  # seeds torch: the inits below follow it
        c = self.config
        dim = data.shape[0]
        self.G = generator(c["code_length"], c["width"], dim, c["depth"]).to(self.device)
        mbd = (c["kernels"], c["kernel_dim"]) if c["minibatch_disc"] else None
        self.D = Discriminator(c["pac"] * dim, c["width"], mbd, c["depth"]).to(self.device)
        betas = (c["beta1"], c["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=c["lr_g"], betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=c["lr_d"], betas=betas)
        self.start_average()

    def code(self, n: int, gen: torch.Generator) -> torch.Tensor:
        # Standard normal (Goodfellow et al.'s toy GANs; the conv trainers keep the seed's
        # uniform codes): its unbounded, edge-free support lets G stretch mass between modes
        # smoothly. Drawn on CPU so the stream is the same on every device (and resumes
        # bit-for-bit).
        return torch.randn(n, self.config["code_length"], generator=gen).to(self.device)

    def g_loss(self, fake_logit: torch.Tensor) -> torch.Tensor:
        if self.config["loss"] == "minimax":
            return -F.softplus(fake_logit).mean()  # log(1 - D(G(z))), minimised
        return F.softplus(-fake_logit).mean()  # -log D(G(z)): strong gradient early on

    def train(self, steps: int) -> dict[str, float]:
        n = self.config["batch_size"]
        rows: list[torch.Tensor] = []
        for _ in range(steps):
            self.decay_lrs()
            real = self.batch(n)
            z = self.code(n, self.gen)
            with self.autocast():
                with torch.no_grad():
                    fake = self.G(z)
                loss_d = (F.softplus(-self.D(self.judged(real))).mean()
                          + F.softplus(self.D(self.judged(fake))).mean())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()

            z = self.code(n, self.gen)
            with self.autocast():
                loss_g = self.g_loss(self.D(self.judged(self.G(z))))
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
            self.update_average()
            rows.append(torch.stack([loss_g.detach().float(), loss_d.detach().float()]))
            self.step += 1
        # One device sync per call, not two per step.
        values = torch.stack(rows).cpu().tolist() if rows else []
        return mean_losses([{"loss_g": g, "loss_d": d} for g, d in values])

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        z = self.code(n, torch.Generator().manual_seed(seed))
        with self.autocast():
            x = self.sampler(z)
        return x.float().cpu()
