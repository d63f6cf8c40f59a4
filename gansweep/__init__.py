"""gansweep: hyperparameter searches over GAN and self-organising-map trainers.

The repository keeps its layers as top-level folders (`jobs`, `search_spaces`, `analysis`,
`trainers`); they install only under this package (`gansweep.jobs`, ...), so a user's own
`jobs/` or `analysis/` -- which Ray puts on every worker's path with the driver's working
directory -- never shadows them.
"""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gansweep")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
