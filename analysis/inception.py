"""Inception-v3 features through torch-fidelity, for `features: inception` (analysis/features.py
owns the choice; this is the network): what papers' FID is measured in (docs/fid.md).

torch-fidelity's `FeatureExtractorInceptionV3` takes uint8 RGB images of any size and resizes
them itself to 299 x 299 with its TensorFlow-1-compatible bilinear resize, as the original
TF-Inception FID code did; its weights are the TF graph's converted to PyTorch. Given no path
it would download them through torch.hub: gansweep always gives one (the file in torch's hub
cache, where that download would put it, or the spec's PATH) and refuses the sweep before
anything is made when it is not there, since on a cluster without a network that download
hangs or fails mid-trial.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

import torch

from gansweep.trainers.errors import ConfigError

BATCH = 64  # torch-fidelity's own default batch size
EXTRACTOR = "torch_fidelity.feature_extractor_inceptionv3"
NEEDS_LIBRARY = "features: inception needs torch-fidelity; pip install 'gansweep[fid]'"


def _extractor():
    """torch-fidelity's Inception-v3 extractor module, loaded without the package's
    `__init__`: that imports every other extractor (CLIP, DINOv2, VGG) and torchvision's
    datasets, none of which the Inception features use, and fails outright where torchvision
    was built for another torch (PyPI's CUDA wheel beside a CPU torch). The module itself
    needs torch only."""
    if EXTRACTOR in sys.modules:
        return sys.modules[EXTRACTOR]
    if sys.modules.get("torch_fidelity") is not None:  # already imported: use it as it is
        return importlib.import_module(EXTRACTOR)
    # (None in sys.modules is how Python marks a module blocked from import)
    spec = None if "torch_fidelity" in sys.modules else importlib.util.find_spec("torch_fidelity")
    if spec is None:
        raise ConfigError(NEEDS_LIBRARY)
    sys.modules["torch_fidelity"] = importlib.util.module_from_spec(spec)  # not executed
    try:
        return importlib.import_module(EXTRACTOR)
    except ImportError as exc:
        raise ConfigError(f"{NEEDS_LIBRARY} (it does not import here: {exc})") from None
    finally:  # a later `import torch_fidelity` runs the real package
        del sys.modules["torch_fidelity"]


def source() -> tuple[str, Path]:
    """torch-fidelity's weights URL and where torch's hub cache keeps that file (the place
    the library itself would download it to: $TORCH_HOME/hub/checkpoints/<name of the URL>)."""
    url = _extractor().URL_INCEPTION_V3
    name = os.path.basename(urlparse(url).path)
    return url, Path(torch.hub.get_dir()) / "checkpoints" / name


def weights(given: str | None = None) -> Path:
    """The weights file: `given` (the spec's PATH), else torch's hub cache. Refused (never
    downloaded) when it is not there or is not a file torch reads as plain tensors."""
    url, cached = source()
    path = Path(given).expanduser() if given else cached
    if not path.is_file() and given:
        raise ConfigError(f"features: {{inception: {given}}}: no file there; put {cached.name} "
                          f"there (download it from {url} on a machine with a network)")
    if not path.is_file():
        raise ConfigError(f"features: inception needs {cached.name} in {cached.parent} "
                          f"(download it from {url} on a machine with a network), or give "
                          "its path as features: {inception: PATH}")
    try:  # tensors only, before the library loads it (torch-fidelity uses weights_only=False)
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated file, a pickle of other objects
        raise ConfigError(f"features: inception: {path} is not a weights file torch can read "
                          f"as tensors ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                          f"download it again from {url}") from None
    return path


class Inception(torch.nn.Module):
    """(N, C, H, W) images in [-1, 1] (C = 1 or 3) to torch-fidelity's 2048-d features:
    rounded to uint8 RGB as the library takes them (grey repeated into three channels, as its
    image loader's convert("RGB") does), resized by the library itself (its TF1-compatible
    bilinear resize to 299 x 299), in batches on `device`."""

    def __init__(self, weights: Path, device: str = "cpu"):
        super().__init__()
        cls = _extractor().FeatureExtractorInceptionV3
        try:
            self.net = cls("inception-v3-compat", ["2048"],
                           feature_extractor_weights_path=str(weights))
        except Exception as exc:  # noqa: BLE001 - keys or shapes of another network
            raise ConfigError(f"features: inception: {weights} does not hold torch-fidelity's "
                              f"Inception-v3 weights ({str(exc).splitlines()[0]})") from None
        self.device = torch.device(device)
        self.net.to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        out = [self.net(b.to(self.device))[0].cpu() for b in images.split(BATCH)]
        return torch.cat(out).double()
