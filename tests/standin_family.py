"""A sixth trainer family that lives only in the tests: a Gaussian whose mean and log-scale
are fitted to vector data by moment matching. Registering it (one registry line) is all it
takes for `gansweep train`, sweeps, status and reports to run it (tests/test_family.py)."""
from __future__ import annotations

from typing import Any

import torch

from gansweep.trainers import registry
from gansweep.trainers.base import Trainer
from gansweep.trainers.hparams import pick

NAME = "gauss-fit"


class GaussFit(Trainer):
    name = NAME
    data_kinds = ("vector",)
    HPARAMS = pick("batch_size", "lr_g", lr_g=0.05)

    def __init__(self, config: dict[str, Any], data, device="cpu", seed: int = 0):
        super().__init__(config, data, device, seed)
        dim = data.shape[0]
        self.mu = torch.zeros(dim, requires_grad=True)
        self.log_sigma = torch.zeros(dim, requires_grad=True)
        self.opt = torch.optim.Adam([self.mu, self.log_sigma], lr=self.config["lr_g"])

    def train(self, steps: int) -> dict[str, float]:
        loss = torch.zeros(())
        for _ in range(steps):
            x = self.batch(self.config["batch_size"])
            loss = ((x.mean(0) - self.mu) ** 2).sum() + \
                ((x.std(0).log() - self.log_sigma) ** 2).sum()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.step += 1
        return {"loss_g": float(loss.detach())}

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> torch.Tensor:
        z = torch.randn(n, len(self.mu), generator=torch.Generator().manual_seed(seed))
        return self.mu + self.log_sigma.exp() * z

    def state_dict(self) -> dict[str, Any]:
        return {**self.base_state(), "mu": self.mu.detach().clone(),
                "log_sigma": self.log_sigma.detach().clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_base_state(state)
        with torch.no_grad():
            self.mu.copy_(state["mu"])
            self.log_sigma.copy_(state["log_sigma"])
        self.opt.load_state_dict(state["opt"])


def register() -> None:
    """The one line a new family adds to trainers/registry.py, done at run time (also the
    Ray workers' setup hook, so trials find it)."""
    registry.TRAINERS[NAME] = (__name__, "GaussFit")
