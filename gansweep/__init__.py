"""gansweep: hyperparameter searches over GAN and self-organising-map trainers.

The Python API (gansweep/api.py): `submit`, `resume`, `load`, `train`; the trainer contract a
group's own model follows: `Trainer` with its hyperparameter schema `HParam`.

The repository keeps its layers as top-level folders (`jobs`, `search_spaces`, `analysis`,
`trainers`); they install only under this package (`gansweep.jobs`, ...), so a user's own
`jobs/` or `analysis/` -- which Ray puts on every worker's path with the driver's working
directory -- never shadows them.
"""
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gansweep")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

# Loaded on first use: `import gansweep` (which every command does) must not import torch.
_EXPORTS = {
    "submit": "gansweep.api", "resume": "gansweep.api", "load": "gansweep.api",
    "train": "gansweep.api", "track": "gansweep.api", "SweepResult": "gansweep.api",
    "Trainer": "gansweep.trainers.base", "TwoPlayer": "gansweep.trainers.base",
    "HParam": "gansweep.trainers.hparams", "Dataset": "gansweep.trainers.data",
    "ConfigError": "gansweep.trainers.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gansweep' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
