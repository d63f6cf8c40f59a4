"""The DCGAN-style conv stacks the dcgan, wgan and wgan-gp trainers share.

Sizes follow the seed: the generator starts from a 4x4 map and doubles the side with
kernel-4 stride-2 transposed convolutions; channels halve on the way up so the last hidden
layer has `width` channels (64x64 with width=128 is the seed's 1024-512-256-128 stack). The
discriminator (critic) mirrors it and ends in one unbounded logit per image.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import nn

from gansweep.trainers.data import Dataset
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.stabilisers import standing_statistics

# The standing-statistics pass (`generate(standing=...)`): this many batches of codes from a
# fixed seed, so the statistics describe the network, not the seed or size of a sample.
STANDING_BATCHES, STANDING_SEED = 16, 0x5EED


def hidden_channels(image_size: int, width: int) -> list[int]:
    """Channels of the hidden maps from the 4x4 end outwards: [.., 4*width, 2*width, width]."""
    layers = int(math.log2(image_size // 4))  # 4x4 -> image_size/2 by doubling
    if 4 * 2 ** layers != image_size or layers < 1:
        raise ValueError(f"image_size must be 4 * 2**k with k >= 1, not {image_size}")
    return [width * 2 ** i for i in reversed(range(layers))]


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (Radford et al.; PyTorch examples/dcgan): N(0, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def generator(code_length: int, image_size: int, width: int, channels: int) -> nn.Sequential:
    """Code (N, code_length, 1, 1) -> image (N, channels, S, S) in [-1, 1]."""
    hidden = hidden_channels(image_size, width)
    # No conv biases before batch norm: its shift would cancel them.
    layers: list[nn.Module] = [nn.ConvTranspose2d(code_length, hidden[0], 4, 1, 0, bias=False),
                               nn.BatchNorm2d(hidden[0]), nn.ReLU(inplace=True)]
    for c_in, c_out in itertools.pairwise(hidden):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    layers += [nn.ConvTranspose2d(hidden[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
    net = nn.Sequential(*layers)
    net.apply(init_weights)
    return net


def discriminator(image_size: int, width: int, channels: int,
                  norm: str = "batch") -> nn.Sequential:
    """Image -> one logit per image, shape (N,); `norm` is "batch", "layer" or "none".

    WGAN-GP needs "layer" (or "none"): its penalty is per-sample, and batch norm would make
    each sample's critic value depend on the rest of the batch (Gulrajani et al., sec. 4).
    """
    hidden = list(reversed(hidden_channels(image_size, width)))  # width, 2*width, ..
    layers: list[nn.Module] = []
    c_in, side = channels, image_size
    for i, c_out in enumerate(hidden):
        side //= 2
        layers.append(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False))
        if i > 0 and norm == "batch":  # the first layer sees raw pixels: no norm (DCGAN)
            layers.append(nn.BatchNorm2d(c_out))
        elif i > 0 and norm == "layer":
            layers.append(nn.LayerNorm([c_out, side, side]))
        elif i > 0 and norm != "none":
            raise ValueError(f"norm must be batch, layer or none, not {norm!r}")
        layers.append(nn.LeakyReLU(0.2, inplace=True))
        c_in = c_out
    layers += [nn.Conv2d(c_in, 1, 4, 1, 0, bias=False), nn.Flatten(0)]
    net = nn.Sequential(*layers)
    net.apply(init_weights)
    return net


def uniform_code(gen: torch.Generator, n: int, code_length: int,
                 device: torch.device) -> torch.Tensor:
    """Codes uniform in [-1, 1] (the seed's), drawn on the CPU generator for reproducibility."""
    z = torch.rand(n, code_length, 1, 1, generator=gen).mul_(2.0).sub_(1.0)
    return z.to(device, non_blocking=True)


@torch.no_grad()
def generate(net: nn.Module, n: int, code_length: int, seed: int, device: torch.device,
             autocast: Callable[[], AbstractContextManager], chunk: int = 1024,
             standing: int = 0) -> torch.Tensor:
    """`n` samples on the CPU as float32, from codes of a fresh generator seeded by `seed`.
    `standing`: a batch size, to measure the batch-norm statistics on `net` itself first
    (the averaged generator: `TwoPlayer.standing`); 0 samples with the ones it has."""
    # Eval mode: running BN stats make each sample depend on its own code only (not on n or
    # the chunking) and leave the BN buffers, i.e. the training state, untouched.
    fixed = torch.Generator().manual_seed(STANDING_SEED)
    codes = (uniform_code(fixed, standing, code_length, device)
             for _ in range(STANDING_BATCHES if standing else 0))
    gen = torch.Generator().manual_seed(seed)
    with autocast():
        with standing_statistics(net, codes):
            out = []
            for start in range(0, max(n, 1), chunk):  # n == 0 still gives (0, C, H, W)
                z = uniform_code(gen, min(chunk, n - start), code_length, device)
                out.append(net(z).float().cpu())
    return torch.cat(out)


def check_images(data: Dataset, image_size: int, who: str) -> int:
    """Channels of `data`, after checking its images have the trainer's side."""
    if data.train.ndim != 4 or data.train.shape[-2:] != (image_size, image_size):
        raise ConfigError(
            f"{who} builds {image_size}x{image_size} images but dataset {data.name} has samples "
            f"of shape {tuple(data.train.shape[1:])}; load it with image_size={image_size}"
        )
    return int(data.train.shape[1])


def build_pair(trainer, norm: str) -> tuple[nn.Module, nn.Module]:
    """The generator and the discriminator/critic (with `norm`) for a conv trainer's config
    and data, on its device. With `pac` > 1 the discriminator takes `pac` images stacked
    along the channels (PacGAN)."""
    c = trainer.config
    channels = check_images(trainer.data, c["image_size"], f"trainer {trainer.name}")
    G = generator(c["code_length"], c["image_size"], c["width"], channels)
    D = discriminator(c["image_size"], c["width"], c.get("pac", 1) * channels, norm)
    return G.to(trainer.device), D.to(trainer.device)


def means(losses: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    """Mean of each list of detached scalar losses, read from the device in one sync.

    Collected as tensors rather than floats: a .item() per step would stall a GPU, and a
    running sum would cost an extra kernel per loss per step.
    """
    losses = {k: v for k, v in losses.items() if v}  # a loss not taken in these steps (lazy R1)
    if not losses:
        return {}
    values = torch.stack([torch.stack(v).mean() for v in losses.values()]).tolist()
    return dict(zip(losses, values))
