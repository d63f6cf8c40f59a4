"""Hyperparameter schema shared by trainers, `--set`, sweep specs and search spaces.

One catalogue of names (`COMMON`) so every family speaks the same language; a trainer picks the
entries it honours and may change their defaults with `HParam.but(...)`.

A hyperparameter added after sweeps already exist has a `neutral` value: the one at which a
trainer behaves exactly as it did before the hyperparameter existed (and its default). A
configuration that leaves it there is the old configuration, so `keyed()` drops it before a
configuration is hashed and a checkpoint written without it still loads.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, replace
from typing import Any

from gansweep.trainers.errors import ConfigError

# Image sides every image source resizes to and every conv trainer builds (4 * 2**k: the
# generator doubles a 4x4 map k times).
IMAGE_SIZES = (8, 16, 32, 64)
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Unset(enum.Enum):
    # An enum member, not object(): it survives pickling (Ray ships schemas between processes)
    # and None is itself a neutral value (lr_half_life).
    NO_NEUTRAL = "no neutral value"


NO_NEUTRAL = _Unset.NO_NEUTRAL


@dataclass(frozen=True)
class HParam:
    name: str
    kind: type  # int, float, str or bool
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    optional: bool = False  # None allowed (the trainer derives the value)
    help: str = ""
    neutral: Any = NO_NEUTRAL  # the value that behaves as if the hyperparameter did not exist
    # The default search range of a trainer without a family function in search_spaces (a
    # research group's own): {low, high, log} or {choices}. None: searched only when a spec's
    # `space` names it.
    search: dict | None = field(default=None, compare=False, hash=False)

    def but(self, **changes) -> "HParam":
        return replace(self, **changes)

    def allowed(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'an integer' if self.kind is int else 'a number'} in [{lo}, {hi}]"

    def parse(self, text: str) -> Any:
        """Convert a command-line string (`--set key=value`) and check it."""
        t = text.strip()
        if self.optional and t.lower() in {"none", "null", ""}:
            return None
        try:
            if self.kind is bool:
                if t.lower() in _TRUE:
                    return True
                if t.lower() in _FALSE:
                    return False
                raise ValueError
            value = self.kind(float(t)) if self.kind is int and "e" in t.lower() else self.kind(t)
        except (ValueError, OverflowError):  # int(float("1e999")) overflows
            raise ConfigError(f"{self.name}={text!r} is not valid: use {self.allowed()}") from None
        return self.check(value)

    def check(self, value: Any) -> Any:
        """Validate a typed value (from JSON/YAML/Optuna); return it normalised."""
        if value is None and self.optional:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name}={value!r} is not valid: use {self.allowed()}")
            return value
        if self.kind is int:
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                raise ConfigError(f"{self.name}={value!r} is not valid: use {self.allowed()}")
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{self.name}={value!r} is not valid: use {self.allowed()}")
            value = float(value)
            if not math.isfinite(value):
                # NaN passes every range test (each comparison is False), and an infinite
                # bound or rate only fails later, inside an optimiser, as a stack trace
                raise ConfigError(f"{self.name}={value!r} is not valid: use {self.allowed()} "
                                  "(a finite number)")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"{self.name}={value!r} is not valid: use {self.allowed()}")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ConfigError(f"{self.name}={value!r} is out of range: use {self.allowed()}")
        return value


COMMON: dict[str, HParam] = {
    h.name: h
    for h in [
        HParam("batch_size", int, 64, low=1, high=65536, help="samples per step"),
        HParam("code_length", int, 100, low=1, high=4096, help="latent code dimension"),
        HParam("lr_g", float, 5e-4, low=0.0, high=1.0, help="generator learning rate"),
        HParam("lr_d", float, 1e-4, low=0.0, high=1.0,
               help="discriminator (critic) learning rate"),
        HParam("beta1", float, 0.5, low=0.0, high=0.9999, help="Adam beta1"),
        HParam("beta2", float, 0.999, low=0.0, high=0.9999, help="Adam beta2"),
        HParam("n_critic", int, 5, low=1, high=100, help="critic steps per generator step"),
        HParam("clip_value", float, 0.01, low=1e-6, high=10.0, help="WGAN weight clip"),
        HParam("gp_lambda", float, 10.0, low=0.0, high=1000.0, help="gradient-penalty weight"),
        HParam("gp_center", float, 1.0, low=0.0, high=1.0, neutral=1.0,
               help="the norm the gradient penalty pulls the critic's gradient towards between "
                    "real and fake images: 1 = WGAN-GP (Gulrajani et al. 2017); 0 = zero-centred "
                    "(Thanh-Tung et al. 2019), which does not ask the critic to slope where "
                    "real and fake already meet"),
        HParam("loss", str, "nonsaturating", choices=("minimax", "nonsaturating"),
               help="generator loss"),
        HParam("image_size", int, 32, choices=IMAGE_SIZES, help="side of generated images"),
        HParam("width", int, 64, low=1, high=4096,
               help="network width (conv: channels of the last hidden layer, the seed's "
                    "64x64 1024-512-256-128 stack is width=128; mlp: hidden units)"),
        HParam("optimizer", str, "adam", choices=("adam", "rmsprop"), help="optimiser"),
        HParam("minibatch_disc", bool, False, help="minibatch-discrimination layer in D"),
        HParam("kernels", int, 5, low=1, high=1024, help="minibatch-discrimination kernels"),
        HParam("kernel_dim", int, 3, low=1, high=1024,
               help="minibatch-discrimination kernel dimension"),
        HParam("amp", bool, False, help="bf16 autocast on CUDA (ignored on CPU)"),
        HParam("rows", int, 8, low=1, high=512, help="SOM rows"),
        HParam("cols", int, 8, low=1, high=512, help="SOM columns"),
        HParam("sigma0", float, None, low=1e-3, high=1e3, optional=True,
               help="initial neighbourhood radius (default max(rows, cols) / 2)"),
        HParam("eta0", float, 1.0, low=1e-6, high=10.0, help="initial SOM learning rate"),
        HParam("tau", float, None, low=1e-3, high=1e9, optional=True,
               help="decay constant in epochs (default 0.25 of the adjustment epochs)"),
        HParam("adjust_fraction", float, 0.75, low=0.0, high=1.0,
               help="fraction of epochs in the adjustment phase; the rest converge"),
        HParam("rule", str, "batch", choices=("batch", "online"), help="SOM update rule"),
        # Stabilisers against oscillation and mode collapse. Each is off at its default, which
        # is its neutral value: the trainers behave exactly as before these existed.
        HParam("ema", float, 0.0, low=0.0, high=0.99999, neutral=0.0,
               help="decay of an exponential moving average of the generator's weights that "
                    "sample() (so scoring and the final samples) uses; 0 = off, 0.999 "
                    "averages over ~1000 steps"),
        HParam("pac", int, 1, low=1, high=16, neutral=1,
               help="PacGAN packing: D judges pac samples at once (features or channels "
                    "concatenated); batch_size must be a multiple of it; 1 = off"),
        HParam("lr_half_life", float, None, low=1.0, high=1e9, optional=True, neutral=None,
               help="steps after which both learning rates have halved (exponential in the "
                    "step); none = constant"),
        HParam("augment", str, "none", neutral="none",
               choices=("none", "translation", "cutout", "translation,cutout",
                        "color,translation,cutout"),
               help="DiffAugment: the same random shift, cutout or colour change on every "
                    "image D judges, real and generated (trainers/augment.py); against a D "
                    "that memorises a small training set; none = off"),
        HParam("r1_gamma", float, 0.0, low=0.0, high=1000.0, neutral=0.0,
               help="R1 penalty (Mescheder et al. 2018): r1_gamma / 2 times the squared "
                    "gradient of D's logit at the real images it judges, added to D's loss; "
                    "keeps D smooth around a small training set it would otherwise "
                    "memorise; 0 = off"),
        HParam("r1_every", int, 1, low=1, high=256, neutral=1,
               help="lazy R1 (Karras et al. 2020, StyleGAN2): the penalty on every r1_every-th "
                    "step only, weighted by r1_every so its mean pull is the same, for "
                    "a fraction of the double backward's cost; 1 = every step"),
        HParam("depth", int, 2, low=1, high=8, neutral=2,
               help="hidden layers of the MLP generator and of the MLP discriminator"),
    ]
}


def pick(*names: str, **defaults: Any) -> dict[str, HParam]:
    """Select catalogue entries, overriding defaults: pick("lr_g", lr_g=1e-4)."""
    unknown = set(defaults) - set(names)
    if unknown:
        raise KeyError(f"defaults for unpicked hyperparameters: {sorted(unknown)}")
    return {n: COMMON[n].but(default=defaults[n]) if n in defaults else COMMON[n] for n in names}


def resolve(schema: dict[str, HParam], overrides: dict[str, Any], who: str) -> dict[str, Any]:
    """Defaults of `schema` with `overrides` applied and checked; unknown keys are refused."""
    unknown = sorted(set(overrides) - set(schema))
    if unknown:
        raise ConfigError(
            f"{who} does not take {', '.join(unknown)}; it takes: {', '.join(sorted(schema))}"
        )
    config = {name: h.default for name, h in schema.items()}
    for key, value in overrides.items():
        config[key] = schema[key].check(value)
    pac, batch = config.get("pac", 1), config.get("batch_size")
    if batch is not None and batch % pac:
        # Packing groups the batch into batch_size / pac packs; a remainder would be dropped.
        lower = batch - batch % pac
        near = " or ".join(str(b) for b in (lower, lower + pac) if b)
        raise ConfigError(
            f"pac={pac} does not divide batch_size={batch}: D judges packs of pac samples; "
            f"use a batch_size that is a multiple of {pac} (e.g. {near}) or a pac that "
            f"divides {batch}"
        )
    return config


def keyed(schema: dict[str, HParam], config: dict[str, Any]) -> dict[str, Any]:
    """`config` without the entries that sit at their neutral value: what identifies a
    configuration, so adding a hyperparameter leaves existing configurations' keys as they were.
    Keys outside `schema` are kept."""
    return {k: v for k, v in config.items()
            if k not in schema or schema[k].neutral is NO_NEUTRAL or v != schema[k].neutral}


def with_neutral(schema: dict[str, HParam], config: dict[str, Any]) -> dict[str, Any]:
    """`config` (e.g. from a checkpoint written before some hyperparameters existed) with each
    missing neutral-valued hyperparameter of `schema` filled in at its neutral value."""
    missing = {k: h.neutral for k, h in schema.items()
               if k not in config and h.neutral is not NO_NEUTRAL}
    return {**config, **missing}


def parse_sets(schema: dict[str, HParam], items: list[str], who: str) -> dict[str, Any]:
    """Parse `key=value` strings from the command line against `schema`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep:
            raise ConfigError(f"--set {item!r}: write key=value, e.g. --set lr_g=2e-4")
        if key not in schema:
            raise ConfigError(
                f"{who} does not take {key}; it takes: {', '.join(sorted(schema))}"
            )
        out[key] = schema[key].parse(text)
    return out
