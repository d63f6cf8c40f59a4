"""Kohonen self-organising map: a rows x cols grid of unit weight vectors in data space.

One training step is one epoch (a pass over the training data), as in the seed's listing.
The chapter's listing picks the winner with argmax of the distances; the winner is the unit
*closest* to the sample, so this file uses argmin throughout.

Schedule (epoch t, A = adjust_fraction * epochs adjustment epochs):
    t < A:  eta = eta0 exp(-t/tau),  sigma = sigma0 exp(-t/tau), floored at eta_conv/sigma_conv
    t >= A: eta = eta_conv,          sigma = sigma_conv
The floor keeps the schedule monotone: with the default tau = A/4, sigma0 exp(-t/tau) ends the
adjustment phase at sigma0/55, below any sensible convergence radius; dipping there (k-means
with no neighbourhood) and jumping back up leaves defects the convergence phase does not
repair (10x10 digits, 30 epochs: topographic error 0.015 floored, 0.023 not).
The row and column Gaussians of the neighbourhood are applied one after the other (it
factorises on a rectangular grid), so no (units x units) matrix is ever built.

Rules:
  online  per sample, in a shuffled order from self.gen: W += eta * h(c) * (x - W).
  batch   winners for the whole epoch against the epoch's starting weights, then each unit
          moves toward its neighbourhood-weighted mean m_j = sum_i h_jc(i) x_i / H_j,
          H_j = sum_i h_jc(i):  W_j += eta_eff_j (m_j - W_j),  eta_eff_j = 1 - exp(-eta H_j).
          eta_eff_j is how far one online epoch at per-sample rate eta would carry unit j
          toward m_j (prod_i (1 - eta h_jc(i)) ~ exp(-eta H_j)), so eta means the same thing
          under both rules and a schedule tuned for one carries over to the other. Early on,
          eta H_j >> 1 and this is the classic batch SOM (eta_eff = 1); in the convergence
          phase the small eta damps the update, averaging away the jitter of winners that
          flip between neighbouring units.
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch

from gansweep.trainers.base import Trainer
from gansweep.trainers.data import Dataset
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import HParam, pick

# Distance rows per chunk: bounds the (chunk, units) distance matrix to ~64 MB of float32.
_CHUNK_ELEMS = 1 << 24


class SOM(Trainer):
    name = "som"
    data_kinds = ("vector", "image")
    OUTPUT = "weights"
    # A map whose units mostly win no sample has collapsed onto a few of them.
    COLLAPSE_SIGNAL = "unit_utilization"
    COLLAPSE_THRESHOLD = 0.2
    HPARAMS: ClassVar[dict[str, HParam]] = {
        **pick("rows", "cols", "sigma0", "eta0", "tau", "adjust_fraction", "rule"),
        "epochs": HParam(
            "epochs", int, 100, low=1, high=10**7,
            help="total planned epochs, the length the schedule is laid out over (a trainer "
                 "cannot know the run's length from train() calls; the sweep sets this to the "
                 "spec's steps); epochs past it stay in the convergence phase"),
        "eta_conv": HParam(
            "eta_conv", float, 0.05, low=0.0, high=10.0,
            help="per-sample learning rate of the convergence phase and floor of the "
                 "adjustment decay (batch rule: unit j moves 1 - exp(-eta_conv H_j) of the way "
                 "to its neighbourhood mean per epoch); results barely move over 0.02-0.2"),
        "sigma_conv": HParam(
            "sigma_conv", float, 1.0, low=1e-3, high=1e3,
            help="neighbourhood radius (grid units) of the convergence phase and floor of "
                 "the adjustment decay: 1 keeps neighbours coupled (low topographic error, "
                 "the MiniSom benchmark's operating point); smaller fits the data closer "
                 "(lower quantization error) at the cost of order"),
    }

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        super().__init__(config, data, device, seed)
        c = self.config
        self.rows, self.cols = c["rows"], c["cols"]
        self.x = self.train_x.reshape(len(self.train_x), -1)  # images are flattened
        n, self.dim = self.x.shape
        k = self.rows * self.cols
        # Init from training samples (not uniform in the data range): in high dimensions a
        # uniform box is mostly empty corners far from the data, so many units would start
        # dead; samples start every unit on the data. Drawn from the global RNG that the base
        # class has just seeded with `seed`, leaving self.gen to the training order.
        idx = torch.randperm(n)[:k] if k <= n else torch.randint(n, (k,))
        self.w = self.x[idx.to(self.device)].clone()

    # ---- schedule -------------------------------------------------------------------------
    def schedule(self, t: int) -> tuple[float, float]:
        """(eta, sigma) for epoch t (0-based)."""
        c = self.config
        adjust = c["adjust_fraction"] * c["epochs"]
        if t >= adjust:
            return c["eta_conv"], c["sigma_conv"]
        tau = c["tau"] if c["tau"] is not None else 0.25 * adjust
        sigma0 = c["sigma0"] if c["sigma0"] is not None else max(self.rows, self.cols) / 2
        decay = math.exp(-t / tau)
        return max(c["eta0"] * decay, c["eta_conv"]), max(sigma0 * decay, c["sigma_conv"])

    def _gauss(self, n: int, sigma: float) -> torch.Tensor:
        """exp(-(a - b)^2 / (2 sigma^2)) for grid lines a, b in 0..n-1, (n, n)."""
        a = torch.arange(n, dtype=torch.float32, device=self.device)
        return torch.exp(-(a[:, None] - a[None, :]) ** 2 / (2.0 * sigma * sigma))

    def _smooth(self, a: torch.Tensor, sigma: float) -> torch.Tensor:
        """sum_c h[j, c] a[c] for per-unit rows a, (units, m).

        The Gaussian of the grid distance factorises into a row and a column Gaussian, so this
        is two small products (rows^2 + cols^2 per unit and feature) instead of a
        (units x units) matrix, which would not fit in memory for a 256x256 map.
        """
        g = a.reshape(self.rows, self.cols, -1)
        g = torch.einsum("ir,rcm->icm", self._gauss(self.rows, sigma), g)
        g = torch.einsum("jc,icm->ijm", self._gauss(self.cols, sigma), g)
        return g.reshape(len(a), -1)

    # ---- winners and the two rules ---------------------------------------------------------
    def winners(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the best-matching (closest) unit for each row of x (any sample shape)."""
        x = x.reshape(len(x), -1).to(self.device, torch.float32)
        w2 = (self.w * self.w).sum(1)
        out = torch.empty(len(x), dtype=torch.long, device=self.device)
        chunk = max(1, _CHUNK_ELEMS // len(self.w))
        for s in range(0, len(x), chunk):
            # ||x||^2 - 2 x.w + ||w||^2 without ||x||^2: it is constant along each row, so
            # the argmin is the same, and leaving it out avoids adding a large term that
            # swamps the float32 differences between close units.
            d = torch.addmm(w2, x[s:s + chunk], self.w.T, alpha=-2.0)
            out[s:s + chunk] = d.argmin(1)
        return out

    def _batch_epoch(self, eta: float, sigma: float) -> None:
        win = self.winners(self.x)
        k = len(self.w)
        # per-winner sums and counts side by side, smoothed over the grid in one pass
        acc = torch.zeros(k, self.dim + 1, device=self.device)
        acc[:, :-1].index_add_(0, win, self.x)
        acc[:, -1] = torch.bincount(win, minlength=k).to(acc.dtype)
        acc = self._smooth(acc, sigma)
        mass = acc[:, -1]  # H_j
        target = acc[:, :-1] / mass.clamp_min(1e-30).unsqueeze(1)
        # Units with ~no neighbourhood mass (small sigma, no winners near) keep their weights.
        rate = torch.where(mass > 1e-8, -torch.expm1(-eta * mass), torch.zeros_like(mass))
        target = torch.where((mass > 1e-8).unsqueeze(1), target, self.w)
        self.w += rate.unsqueeze(1) * (target - self.w)

    def _online_epoch(self, eta: float, sigma: float) -> None:
        hr, hc = self._gauss(self.rows, sigma) * eta, self._gauss(self.cols, sigma)
        for i in torch.randperm(len(self.x), generator=self.gen).tolist():
            x = self.x[i]
            c = ((self.w - x) ** 2).sum(1).argmin()
            h = (hr[c // self.cols].unsqueeze(1) * hc[c % self.cols].unsqueeze(0)).reshape(-1, 1)
            self.w += h * (x - self.w)

    # ---- the contract ---------------------------------------------------------------------
    def train(self, steps: int) -> dict[str, float]:
        epoch = self._batch_epoch if self.config["rule"] == "batch" else self._online_epoch
        eta, sigma = self.schedule(self.step)
        for _ in range(steps):
            eta, sigma = self.schedule(self.step)
            epoch(eta, sigma)
            self.step += 1
        return {"eta": float(eta), "sigma": float(sigma)}

    def weights(self) -> np.ndarray:
        """(rows, cols, dim) float32."""
        return self.w.reshape(self.rows, self.cols, self.dim).cpu().numpy().astype(np.float32)

    def output(self, n: int) -> np.ndarray:
        """The map itself, whatever `n`: it is what a SOM is scored on and leaves behind."""
        return self.weights()

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        """n unit weight vectors (distinct while n <= units), shaped like the data's samples."""
        g = torch.Generator().manual_seed(seed)
        k = len(self.w)
        idx = torch.randperm(k, generator=g)[:n] if n <= k else torch.randint(k, (n,), generator=g)
        return self.w[idx.to(self.device)].reshape(n, *self.data.shape)

    def state_dict(self) -> dict[str, Any]:
        return {**self.base_state(), "weights": self.w.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = state["weights"]
        if tuple(w.shape) != tuple(self.w.shape):
            raise ConfigError(
                f"checkpoint SOM weights are {tuple(w.shape)}, this map and dataset need "
                f"{tuple(self.w.shape)}; resume on the same dataset or start a new run"
            )
        self.load_base_state(state)
        self.w = w.to(self.device, torch.float32).clone()
