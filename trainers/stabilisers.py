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
- `standing_statistics`: batch-norm statistics measured on the averaged generator itself
  before it is sampled in eval mode (its copied running statistics belong to the live one).
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

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


@contextmanager
def standing_statistics(net: nn.Module, codes: Iterable[torch.Tensor]) -> Iterator[None]:
    """Within the block, `net` is in eval mode with batch-norm running statistics measured on
    its own activations: reset, then the plain mean over a forward pass of each batch of
    `codes` in train mode ("standing statistics", as BigGAN samples its averaged generator).
    Afterwards its buffers, momentum and mode are as before: sampling leaves the training
    state untouched. Without batch norm or codes it is only eval mode.

    Why: `fold_in` copies the live generator's running statistics into the average, and they
    describe other weights. DCGAN on digits with `ema` 0.999 scored coverage 0.53 sampled
    that way against 0.66 with the batch's own statistics at step 2000
    (benchmarks/bn_mode_probe.py)."""
    codes = list(codes)
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
           and m.track_running_stats] if codes else []
    saved = [(m.momentum, {k: v.clone() for k, v in m.named_buffers(recurse=False)})
             for m in bns]
    was_training = net.training
    try:
        if bns:
            for m in bns:
                m.reset_running_stats()
                m.momentum = None  # a cumulative mean over the batches, not an EMA
            net.train()
            with torch.no_grad():
                for z in codes:
                    net(z)
        net.eval()
        yield
    finally:
        for m, (momentum, buffers) in zip(bns, saved):
            m.momentum = momentum
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
        net.train(was_training)


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
