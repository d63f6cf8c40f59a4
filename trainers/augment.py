"""Differentiable augmentation of what the discriminator sees (hyperparameter `augment`).

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training"): the same kind of random translation, cutout and colour change is applied to every
image D judges, real and generated, in D's step and in G's. D cannot memorise a small training
set pixel for pixel, and G is not taught to draw the augmentations, because its gradient passes
through them. Why here: DCGAN on the 1 438 training digits loses coverage as D's loss falls
and G's climbs (docs/benchmarks/quality.md, how the digits spaces were chosen).

Every random draw comes from the trainer's CPU generator, so a run stays reproducible from its
seed and checkpoint; with `augment` none nothing is drawn and a run is what it was before.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

NEUTRAL = "none"  # the policies are the `augment` choices in trainers/hparams.py
_SHIFT = 0.125  # the paper's: up to 1/8 of the side each way (2 pixels at 16x16)
_CUT = 0.5      # a square of half the side blanked


def _uniform(gen: torch.Generator, n: int, x: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen).to(x.device, x.dtype)


def colour(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) about the pixel's channel mean) and
    contrast (x U(0.5, 1.5) about the image mean), for images in [-1, 1]."""
    n = len(x)
    x = x + (_uniform(gen, n, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(gen, n, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(gen, n, x) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image shifted by whole pixels, up to 1/8 of its side each way; what moves in from
    outside is zero."""
    n, _, h, w = x.shape
    sy, sx = int(h * _SHIFT + 0.5), int(w * _SHIFT + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=gen).to(x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=gen).to(x.device)
    # indices into the image padded by one zero pixel; clamping lands outside on the padding
    iy = (torch.arange(h, device=x.device).view(1, h, 1) + dy).clamp(-1, h) + 1
    ix = (torch.arange(w, device=x.device).view(1, 1, w) + dx).clamp(-1, w) + 1
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # N, H+2, W+2, C
    b = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[b, iy, ix].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each image with a square of half its side set to zero, centred anywhere on it."""
    n, _, h, w = x.shape
    ch, cw = int(h * _CUT + 0.5), int(w * _CUT + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen).to(x.device)
    gy = (torch.arange(ch, device=x.device).view(1, ch, 1) + oy - ch // 2).clamp(0, h - 1)
    gx = (torch.arange(cw, device=x.device).view(1, 1, cw) + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, device=x.device, dtype=x.dtype)
    mask[torch.arange(n, device=x.device).view(n, 1, 1), gy, gx] = 0
    return x * mask.unsqueeze(1)


_STEPS = {"color": colour, "translation": translation, "cutout": cutout}


def augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """`x` (N, C, H, W) through the policy's steps in order; unchanged, drawing nothing, for
    `none`."""
    if policy == NEUTRAL:
        return x
    for name in policy.split(","):
        x = _STEPS[name](x, gen)
    return x
