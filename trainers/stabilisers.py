"""What the GAN families share against oscillation and mode collapse (hyperparameters `ema`,
`pac`, `lr_half_life`); `base.TwoPlayer` wires them into every two-player trainer.

- `average_copy`, `fold_in`: an exponential moving average of the generator's weights
  (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training"). The players
  circle an equilibrium instead of settling on it; the average sits nearer its centre than
  any one iterate, so samples drawn from it stop swinging from report to report.
- `pack`: PacGAN (Lin et al. 2018). D judges `pac` samples at once, so a generator that puts
  many samples on the same few modes is visible to it within one input.
- `lr_factor`: exponential learning-rate decay by half-life, which needs no knowledge of the
  run's length (a sweep may extend or resume a run).
"""
from __future__ import annotations

import copy

import torch
from torch import nn


def average_copy(net: nn.Module) -> nn.Module:
    """A frozen copy of `net` to hold the average of its weights (see `fold_in`)."""
    return copy.deepcopy(net).requires_grad_(False)


@torch.no_grad()
def fold_in(avg: nn.Module, live: nn.Module, decay: float, t: int) -> None:
    """Fold `live` into `avg` as its t-th update (t >= 1).

    `avg` becomes the exponentially weighted mean, with decay `decay`, of the weights after
    each update so far, bias-corrected as Adam's moments are: sum_s d^(t-s) w_s /
    sum_s d^(t-s). Without the correction it would start at the initial weights and, at decay
    0.999, still hold 74 % of them after 300 steps: a short run or an early report would score
    a blend of an untrained and a trained generator.

    Buffers (batch-norm running statistics) are copied from the live network, not averaged:
    they describe the activations of the live weights, which the average tracks.
    """
    # The latest iterate's share: 1 at t = 1, so the average starts at it, and (1 - d) in
    # the long run. A Python float: the same on every device.
    w = (1.0 - decay) / (1.0 - decay ** t)
    for a, p in zip(avg.parameters(), live.parameters()):
        a.lerp_(p, w)
    for a, b in zip(avg.buffers(), live.buffers()):
        a.copy_(b)


def pack(x: torch.Tensor, pac: int) -> torch.Tensor:
    """Groups of `pac` consecutive samples as one input: (N, D) -> (N/pac, pac*D) for vectors,
    (N, C, H, W) -> (N/pac, pac*C, H, W) for images (PacGAN stacks along channels). The
    samples of a batch are drawn independently, so consecutive ones form a random pack."""
    if pac == 1:
        return x
    return x.reshape(len(x) // pac, pac * x.shape[1], *x.shape[2:])


def lr_factor(step: int, half_life: float | None) -> float:
    """The learning rates' multiplier at `step` (0-based): 0.5 ** (step / half_life), 1 at
    step 0; constant 1 without a half-life."""
    return 1.0 if half_life is None else 0.5 ** (step / half_life)
