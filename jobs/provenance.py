"""What exactly ran: the versions a driver run used, and what each node that trained its runs
had (recorded per driver run in sweep.json: analysis/records.py DriverRun)."""
from __future__ import annotations

import functools
import platform
import socket
import subprocess
from pathlib import Path

# The packages whose versions change what a run computes or how a sweep searches.
PACKAGES = ("gansweep", "torch", "ray", "optuna", "numpy")


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the checkout gansweep runs from (an editable install), `+dirty` when its
    tracked files differ from it; None for an installed wheel or without git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], timeout=5,
                              capture_output=True, text=True)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "diff", "--quiet", "HEAD", "--"],
                               timeout=10, capture_output=True).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip()[:12] + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def driver_versions() -> dict:
    """The driver's gansweep (and git commit), Python and library versions, and its host."""
    out = {name: _version(name) for name in PACKAGES}
    out["commit"] = git_commit()
    out["python"] = platform.python_version()
    out["host"] = socket.gethostname()
    return {k: v for k, v in out.items() if v is not None}


@functools.lru_cache(maxsize=1)
def node_info() -> dict:
    """What the machine a trial runs on has: host, gansweep/Python/torch versions, CUDA, and
    its devices' names (GPUs by torch's name for them; else the CPU model)."""
    import torch

    info = {"host": socket.gethostname(), "gansweep": _version("gansweep"),
            "python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda}
    devices: list[str] = []
    try:  # a record of what ran must never fail the run it describes
        if torch.cuda.is_available():
            devices = sorted({torch.cuda.get_device_name(i)
                              for i in range(torch.cuda.device_count())})
    except Exception as exc:  # noqa: BLE001 - a CUDA that says it is there and is not
        devices = [f"cuda: no name ({type(exc).__name__})"]
    # The GPUs this process may see (Ray sets CUDA_VISIBLE_DEVICES per trial); none: the CPU
    info["devices"] = devices or [_cpu_model()]
    return {k: v for k, v in info.items() if v is not None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return "cpu: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu: " + (platform.processor() or platform.machine())

