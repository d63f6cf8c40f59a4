"""The GPU path in one short run: bf16 autocast, checkpoints across devices, the SOM on a GPU,
and fractional GPUs through a real sweep, written to benchmarks/results/gpu.json.

    .venv/bin/python benchmarks/gpu_check.py            # on a CUDA machine, ~8 minutes
    .venv/bin/python benchmarks/gpu_check.py --cpu-only --out /tmp/gpu.json   # rehearsal

Phases (benchmarks/gpu_models.py, benchmarks/gpu_sweep.py), each with its own time cap:
  gan    every GAN family in the registry a few hundred steps in fp32 and with `amp: true`
         (bf16 autocast), conv families also in channels_last; a checkpoint written on the
         GPU resumed on the CPU and back;
  som    a 20x20 map on 20000 x 784 blobs, GPU against CPU, the same result within tolerance;
  sweep  `gansweep submit` on this machine's local Ray at resources {cpu: 2, gpu: 0.25} and
         at {cpu: 2, gpu: 1}: the GPUs Ray gave each trial, nvidia-smi utilisation sampled
         while it runs, configurations per minute.
The JSON is rewritten after every phase, so a run cut short still leaves its figures; a phase
that fails is recorded with its error and the next one runs. Without CUDA (or with
--cpu-only) each phase is marked skipped and rehearsed on the CPU at tiny sizes (the sweep on
a Ray given one logical GPU), so the code cannot rot before a GPU is there: the rehearsal
figures measure nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "benchmarks" / "results" / "gpu.json"
BUDGET_S = 470.0  # the 8 minutes, less the Python and CUDA start-up
WATCHDOG_GRACE_S = 25.0
AMP_TARGET, UTIL_TARGET = 1.5, 80.0
AMP_TARGET_FAMILIES = ("dcgan", "wgan-gp")  # the target names these two, at 64x64


@dataclass(frozen=True)
class Sizes:
    """What each phase trains; FULL on a GPU, TINY for the CPU rehearsal and --quick."""

    image_size: int = 64
    width: int = 128  # 64x64 with width 128: the seed's 1024-512-256-128 stack
    batch_size: int = 64
    steps: int = 300
    warmup: int = 20  # untimed: lazy CUDA init, cuDNN algorithm choice
    chunk: int = 25  # steps per train() call between clock checks
    run_cap_s: float = 12.0  # one timed run stops here even if short of `steps`
    ckpt_steps: int = 10
    som_n: int = 20000
    som_dim: int = 784
    som_map: int = 20
    som_epochs: int = 10
    sweep_trainer: str = "dcgan"
    sweep_dataset: dict | str = field(default_factory=lambda: {"name": "digits",
                                                               "image_size": 32})
    sweep_fixed: dict = field(default_factory=lambda: {"batch_size": 128, "code_length": 64,
                                                       "width": 128})
    sweep_trials: int = 8
    sweep_steps: int = 1000
    sweep_cpu: float = 2.0
    caps: dict = field(default_factory=lambda: {"gan": 150.0, "som": 60.0, "sweep": 230.0})


FULL = Sizes()
TINY = Sizes(image_size=8, width=8, batch_size=16, steps=6, warmup=2, chunk=3, run_cap_s=5.0,
             ckpt_steps=3, som_n=600, som_dim=16, som_map=4, som_epochs=3,
             sweep_trainer="gan", sweep_dataset="ring8",
             sweep_fixed={"width": 16, "batch_size": 64}, sweep_trials=4, sweep_steps=20,
             sweep_cpu=0.5, caps={"gan": 60.0, "som": 30.0, "sweep": 120.0})


class Record:
    """The JSON, rewritten whole (atomically) after every change worth keeping."""

    def __init__(self, path: Path, head: dict):
        self.path, self.data = path, {**head, "phases": {}, "finished": False}
        self.lock = threading.Lock()
        self.save()

    def save(self) -> None:
        with self.lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1, default=str) + "\n")
            os.replace(tmp, self.path)


def run_phase(record: Record, name: str, fn: Callable[[float], dict], cap_s: float,
              end: float) -> dict:
    """fn(deadline) -> the phase's figures; its failure is recorded, never raised."""
    now = time.time()
    deadline = min(now + cap_s, end)
    if deadline - now < 1.0:
        result = {"skipped": "time budget spent"}
    else:
        record.data["phases"][name] = {"running_since": now}
        record.save()
        print(f"[gpu_check] {name}: up to {deadline - now:.0f} s", flush=True)
        try:
            result = fn(deadline)
        except Exception as exc:  # a user's Ctrl-C still ends the run
            result = {"error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc(limit=6).splitlines()[-12:]}
        result["wall_s"] = round(time.time() - now, 2)
    record.data["phases"][name] = result
    record.save()
    return result


def watchdog(record: Record, end: float) -> None:
    """A phase stuck past its cooperative deadline (a hung kernel, a sweep that ignores
    SIGINT) would take the run past its limit with nothing marked; this ends it first."""
    def fire():
        time.sleep(max(0.0, end + WATCHDOG_GRACE_S - time.time()))
        for phase in record.data["phases"].values():
            if "running_since" in phase:
                phase["error"] = "stopped by the watchdog: phase ran past the run's budget"
        record.data["watchdog"] = True
        record.save()
        os._exit(3)

    threading.Thread(target=fire, daemon=True).start()


def sh(*cmd: str) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(cuda: bool) -> dict:
    import numpy as np
    import optuna
    import ray
    import torch

    env = {
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "ray": ray.__version__, "optuna": optuna.__version__,
        "numpy": np.__version__, "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2), "torch_threads": torch.get_num_threads(),
        "git_commit": sh("git", "-C", str(ROOT), "rev-parse", "HEAD"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "device": "cpu (no CUDA device)",
    }
    if cuda:
        props = torch.cuda.get_device_properties(0)
        env.update(
            device=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count(),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            # what fp32 means here: TF32 tensor cores or not (the bf16 ratio depends on it)
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
            cudnn_benchmark=torch.backends.cudnn.benchmark)
    smi = sh("nvidia-smi", "--query-gpu=name,driver_version,memory.total",
             "--format=csv,noheader")
    header = sh("nvidia-smi") or ""
    env["nvidia_smi"] = smi.splitlines() if smi else None
    env["cuda_driver_version"] = next((p.split()[0] for p in header.split("CUDA Version:")[1:]),
                                      None)
    return env


def targets(phases: dict) -> dict:
    """The issue's targets, judged only on GPU figures (None: not measured)."""
    gan = phases.get("gan", {}).get("families", {})
    amp = {name: gan.get(name, {}).get("amp_ratio") for name in AMP_TARGET_FAMILIES}
    arms = phases.get("sweep", {}).get("arms", {})
    util = arms.get("quarter", {}).get("utilisation", {}).get("mean_while_training")
    rates = [arms.get(a, {}).get("configs_per_min") for a in ("quarter", "whole")]
    return {
        "bf16_vs_fp32_at_64px": {"want": f">= {AMP_TARGET}x", "ratios": amp,
                                 "met": None if None in amp.values()
                                 else all(r >= AMP_TARGET for r in amp.values())},
        "four_trials_per_gpu": {
            "want": f"mean utilisation >= {UTIL_TARGET:g} % while trials train, and more "
                    "configurations per minute than one trial per GPU",
            "utilisation_mean": util, "configs_per_min_quarter_whole": rates,
            "met": None if util is None or None in rates
            else util >= UTIL_TARGET and rates[0] > rates[1]},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=OUT, help=f"the JSON (default {OUT})")
    p.add_argument("--cpu-only", action="store_true",
                   help="skip what needs CUDA even if there is some; rehearse on the CPU")
    p.add_argument("--quick", action="store_true", help="tiny sizes on the GPU (smoke test)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all phases")
    p.add_argument("--phases", default="gan,som,sweep", help="comma-separated subset")
    p.add_argument("--sweep-trials", type=int, help="configurations per sweep arm")
    p.add_argument("--sweep-steps", type=int, help="training steps per sweep trial")
    args = p.parse_args(argv)

    import torch

    from benchmarks.gpu_models import gan_phase, som_phase
    from benchmarks.gpu_sweep import sweep_phase

    cuda = torch.cuda.is_available() and not args.cpu_only
    why_not = None if cuda else ("--cpu-only given" if torch.cuda.is_available()
                                 else "no CUDA device")
    sizes = FULL if cuda and not args.quick else TINY
    sizes = replace(sizes, sweep_trials=args.sweep_trials or sizes.sweep_trials,
                    sweep_steps=args.sweep_steps or sizes.sweep_steps)
    started = time.time()
    end = started + args.budget
    record = Record(args.out, {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "mode": "gpu" if cuda else "cpu rehearsal", "cuda": cuda, "skipped_reason": why_not,
        "budget_s": args.budget, "sizes": asdict(sizes), "environment": environment(cuda)})
    watchdog(record, end)
    device = "cuda" if cuda else "cpu"
    phases = {
        "gan": lambda dl: gan_phase(sizes, device, dl),
        "som": lambda dl: som_phase(sizes, (device, "cpu"), dl),
        "sweep": lambda dl: sweep_phase(sizes, cuda, dl),
    }
    for name in args.phases.split(","):
        run = phases[name]
        if not cuda:  # rehearse, and say plainly that nothing was measured
            run = (lambda r: lambda dl: {"skipped": why_not, "rehearsal_on_cpu": r(dl)})(run)
        run_phase(record, name, run, sizes.caps[name], end)
    record.data.update(targets=targets(record.data["phases"]) if cuda else None,
                       wall_s=round(time.time() - started, 1), finished=True)
    record.save()
    print(f"[gpu_check] wrote {args.out} in {record.data['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
