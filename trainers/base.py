"""The trainer contract every model family follows.

A trainer is built from `(config, data, device, seed)` and offers `train(steps) -> losses`,
`sample(n) -> tensor in data space`, and `state_dict()` / `load_state_dict()` covering
networks, optimisers, the step counter and the training RNG, so a resumed run continues
bit-for-bit on CPU.

What differs between families is said by the trainer, so no other module asks which family
it is: `OUTPUT` names what a finished run leaves and is scored on ("samples" in data space,
or a map's "weights"), `output(n)` returns it, and `COLLAPSE_SIGNAL` / `COLLAPSE_THRESHOLD`
are the metric the collapse rule watches and its default threshold.

Randomness: weights are initialised under `torch.manual_seed(seed)`; everything drawn while
training (batch indices, codes, interpolation weights) comes from `self.gen`, a CPU generator
saved in the state. `sample()` draws from its own generator seeded by its `seed` argument, so
scoring during training never changes the training trajectory and a fixed latent batch is
one call away.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from gansweep.trainers.augment import NEUTRAL, augment
from gansweep.trainers.data import Dataset
from gansweep.trainers.errors import ConfigError
from gansweep.trainers.hparams import HParam, resolve, with_neutral
from gansweep.trainers.stabilisers import average_copy, fold_in, lr_factor, pack


class CudaUnusable(ConfigError):
    """A process was given a GPU that torch cannot use here (a CPU-only build, a driver too old
    for the build's CUDA, a GPU the build has no kernels for)."""


def pick_device(prefer: str | None = None, gpus: Sequence[str] | None = None) -> torch.device:
    """The device a trainer runs on.

    `prefer` wins when given. `gpus` are the GPUs a scheduler assigned this process (a Ray
    trial's `ray.get_gpu_ids()`). None of them means the CPU even where CUDA is visible: Ray
    no longer hides a node's GPUs from work that asked for none, and such a trial would use
    a GPU nobody reserved. Some of them means CUDA, and CUDA that torch cannot use raises
    CudaUnusable: training on the CPU would hold the GPU share idle and run slower than
    planned, with nothing to say so. Without `gpus` (no scheduler, as in `gansweep train`):
    CUDA when torch sees a device, unless CUDA_VISIBLE_DEVICES hides them all.
    """
    if prefer:
        return torch.device(prefer)
    if gpus is None:
        if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
            return torch.device("cpu")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not gpus:
        return torch.device("cpu")
    problem = cuda_problem()
    if problem:
        raise CudaUnusable(
            f"resources.gpu: this trial was given GPU {', '.join(map(str, gpus))} but torch "
            f"{torch.__version__} (CUDA {torch.version.cuda or 'none'}) cannot use it: "
            f"{problem}. Install a CUDA build of torch that this node's NVIDIA driver supports "
            "(the cluster's setup runs `gansweep cluster node-check` to catch this), or set "
            "resources.gpu: 0 to train on CPUs")
    # Ray sets CUDA_VISIBLE_DEVICES to the assigned GPUs, so the first visible one is ours.
    return torch.device("cuda")


def cuda_problem() -> str | None:
    """Why torch cannot run CUDA work in this process, or None when it can."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return "it is a CPU-only build"
    try:
        torch.cuda.init()  # raises with the driver's own reason, where is_available() is silent
        if torch.cuda.device_count() == 0:
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            return f"it sees no CUDA device (CUDA_VISIBLE_DEVICES={visible!r})"
        # One kernel: a build without kernels for this GPU's architecture fails only here.
        (torch.ones(1, device="cuda") + 1).cpu()
    except Exception as exc:  # torch raises RuntimeError, AssertionError, AcceleratorError
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"
    return None


class Trainer:
    name: ClassVar[str]
    data_kinds: ClassVar[tuple[str, ...]]  # "vector", "image"
    HPARAMS: ClassVar[dict[str, HParam]]
    OUTPUT: ClassVar[str] = "samples"
    # mode_diversity is modes_captured / K on mixtures and coverage otherwise: under 0.25 a
    # generator has dropped most modes.
    COLLAPSE_SIGNAL: ClassVar[str] = "mode_diversity"
    COLLAPSE_THRESHOLD: ClassVar[float] = 0.25

    def __init__(self, config: dict[str, Any], data: Dataset, device: torch.device | str = "cpu",
                 seed: int = 0):
        if data.kind not in self.data_kinds:
            raise ConfigError(
                f"trainer {self.name} takes {' or '.join(self.data_kinds)} data; dataset "
                f"{data.name} is {data.kind} data. Pick another dataset or trainer."
            )
        self.config = resolve(self.HPARAMS, config, f"trainer {self.name}")
        self.data = data
        self.device = torch.device(device)
        self.seed = int(seed)
        self.step = 0
        self.scored_batch: tuple[int, Any] | None = None  # (step, output): see output()
        torch.manual_seed(self.seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.train_x = torch.as_tensor(data.train, dtype=torch.float32).to(self.device)

    # ---- helpers the families share -------------------------------------------------------
    def batch(self, n: int) -> torch.Tensor:
        """A minibatch of real data drawn with replacement from the training split."""
        idx = torch.randint(len(self.train_x), (n,), generator=self.gen)
        return self.train_x[idx.to(self.device)]

    def autocast(self):
        """bf16 autocast on CUDA when `amp` is on; a no-op on CPU."""
        if self.config.get("amp") and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def base_state(self) -> dict[str, Any]:
        return {"step": self.step, "gen": self.gen.get_state(), "config": dict(self.config),
                "seed": self.seed, "trainer": self.name}

    def load_base_state(self, state: dict[str, Any]) -> None:
        if state.get("trainer") != self.name:
            raise ConfigError(
                f"checkpoint is from trainer {state.get('trainer')!r}, not {self.name!r}"
            )
        # A checkpoint written before a hyperparameter existed trained at its neutral value.
        saved = with_neutral(self.HPARAMS, state["config"])
        if saved != self.config:
            diff = sorted(k for k in set(saved) | set(self.config)
                          if saved.get(k) != self.config.get(k))
            raise ConfigError(
                f"checkpoint was trained with other hyperparameters ({', '.join(diff)}); "
                "resume with the same configuration or start a new run directory"
            )
        self.step = int(state["step"])
        self.gen.set_state(state["gen"])
        self.scored_batch = None

    # ---- the contract ---------------------------------------------------------------------
    def output(self, n: int) -> np.ndarray:
        """What is scored at a report and left behind at the end: `n` samples from the fixed
        latent batch (seed 0), as float32 on the CPU. Drawn once per training step, so the
        final file reuses the last report's batch instead of a second forward pass (a
        restored trainer starts without one)."""
        cached = self.scored_batch
        if cached is None or cached[0] != self.step:
            batch = self.sample(n).float().cpu().numpy()
            self.scored_batch = cached = (self.step, batch)
        return cached[1]

    def train(self, steps: int) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class TwoPlayer(Trainer):
    """A family with a generator `G` and a discriminator or critic `D`, each with its own
    optimiser (`opt_g`, `opt_d`), and, with `ema` on, the average of G's weights (`G_avg`):
    their state is the whole of the trainer's state.

    The stabilisers (trainers/stabilisers.py) are wired in here: a family calls
    `start_average()` once G exists, `decay_lrs()` at the start of each step and
    `update_average()` after each generator update, gives D its inputs through `judged()`,
    and draws its samples from `sampler`.
    At the neutral values (`ema` 0, no `lr_half_life`) these do nothing and `sampler` is G."""

    PARTS = ("G", "D", "opt_g", "opt_d")
    G_avg: nn.Module | None = None

    def start_average(self) -> None:
        """With `ema` on, start the average of G's weights; a family calls it once G exists."""
        if self.config.get("ema", 0.0):
            self.G_avg = average_copy(self.G)

    @property
    def sampler(self) -> nn.Module:
        """The generator samples are drawn from: the average when there is one."""
        return self.G if self.G_avg is None else self.G_avg

    @property
    def standing(self) -> int:
        """The batch size image families measure the average's batch-norm statistics with
        before sampling it (`convnets.generate`); 0 without an average (the live G's running
        statistics are its own)."""
        return 0 if self.G_avg is None else int(self.config["batch_size"])

    def decay_lrs(self) -> None:
        """Set both learning rates for the step about to be taken (`lr_half_life`)."""
        half_life = self.config.get("lr_half_life")
        if half_life is None:
            return
        f = lr_factor(self.step, half_life)
        for opt, key in ((self.opt_g, "lr_g"), (self.opt_d, "lr_d")):
            for group in opt.param_groups:
                group["lr"] = self.config[key] * f

    def judged(self, x: torch.Tensor) -> torch.Tensor:
        """What D sees of a batch, in every family: each sample augmented (`augment`, image
        families only; trainers/augment.py), then packed (`pac`)."""
        return pack(augment(x, self.config.get("augment", NEUTRAL), self.gen), self.config["pac"])

    def update_average(self) -> None:
        """Fold the generator just updated into the average (`ema`); before `step += 1`."""
        if self.G_avg is not None:
            fold_in(self.G_avg, self.G, self.config["ema"], self.step + 1)

    def parts(self) -> tuple[str, ...]:
        # Only with ema on: at ema 0 a checkpoint is exactly what it was before ema existed.
        return self.PARTS + (("G_avg",) if self.G_avg is not None else ())

    def state_dict(self) -> dict[str, Any]:
        return {**self.base_state(), **{k: getattr(self, k).state_dict() for k in self.parts()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_base_state(state)
        for k in self.parts():
            getattr(self, k).load_state_dict(state[k])


def mean_losses(rows: list[dict[str, float]]) -> dict[str, float]:
    """Average per-step loss dicts over the steps of one `train()` call."""
    if not rows:
        return {}
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
