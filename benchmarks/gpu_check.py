"""The GPU path in one short run, written to OUT_DIR/gpu.json: bf16 autocast, trainer
processes sharing a GPU, the SOM on a GPU, checkpoints across devices, and (where Ray is
installed) fractional GPUs through a real sweep.

Made to run the first time on a freshly provisioned GPU machine: any Python (3.10+) with a
CUDA build of PyTorch and numpy, no network, gansweep neither installed nor its other
dependencies (Ray, Optuna, scikit-learn, scipy, pyarrow): the phases below import only torch,
numpy and this checkout's own source.

    python3 benchmarks/gpu_check.py --out-dir OUT_DIR        # a bare GPU box, < 5 minutes
    .venv/bin/python benchmarks/gpu_check.py --out-dir OUT_DIR   # with the sweep phase
    .venv/bin/python benchmarks/gpu_check.py --cpu-only --out-dir /tmp/gpu   # rehearsal

Phases (benchmarks/gpu_models.py; the sweep in benchmarks/gpu_sweep.py):
  gan         every GAN family a few hundred steps at 64x64 in fp32 and with `amp: true`
              (bf16 autocast), conv families also in channels_last;
  share       four DCGAN trainer processes on the one GPU against one alone (what
              `resources: {gpu: 0.25}` buys, measured without Ray);
  som         a 20x20 map on 20000 x 784 blobs, GPU against CPU, the same result within
              tolerance;
  checkpoint  every GAN family at 16x16: a checkpoint written on the GPU resumed on the CPU
              and back, state identical after each load;
  sweep       only where Ray and Optuna import: `gansweep submit` on this machine's local Ray
              at resources {cpu: 2, gpu: 0.25} and {cpu: 2, gpu: 1}: the GPUs Ray gave each
              trial, nvidia-smi utilisation while it runs, configurations per minute.

Each phase runs in a process of its own, under a hard cap: at its deadline it stops starting
work, and past that by PHASE_GRACE_S its process group is killed (a hung kernel, a sweep that
ignores SIGINT), keeping what it had handed back; the next phase then runs. The whole run is
capped the same way (BUDGET_S of phases, then the watchdog), under 5 minutes in all. The JSON
is rewritten after every change worth keeping, so a run cut short still leaves its figures.
Without CUDA (or with --cpu-only) each phase is marked skipped and rehearsed on the CPU at tiny
sizes (the sweep on a Ray given one logical GPU), so the code cannot rot before a GPU is there:
the rehearsal figures measure nothing.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "gpu.json"  # where a run worth keeping is copied to
BUDGET_S = 260.0  # of phases; with start-up, the grace and the watchdog: under 300 s in all
PHASE_GRACE_S = 10.0  # past a phase's deadline before its processes are killed
WATCHDOG_GRACE_S = 20.0  # past the budget before the whole run ends, whatever is running
AMP_TARGET, UTIL_TARGET = 1.5, 80.0
AMP_TARGET_FAMILIES = ("dcgan", "wgan-gp")  # the target names these two, at 64x64
NEEDS_RAY = ("ray", "optuna")  # what the sweep phase imports beyond the others


def use_checkout() -> None:
    """gansweep from this checkout, installed or not. The repository keeps its layers in
    top-level folders that pyproject.toml installs as gansweep.<layer>; on a bare GPU box
    nothing was installed (and pip may have no network), so the package's path is widened to
    the checkout's root, where those folders are. Where gansweep is installed from this
    checkout, the same files load."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import gansweep

    if str(ROOT) not in gansweep.__path__:
        gansweep.__path__.append(str(ROOT))


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a blocked or broken package counts as missing
        return False


@dataclass(frozen=True)
class Sizes:
    """What each phase trains; FULL on a GPU, TINY for the CPU rehearsal and --quick."""

    image_size: int = 64
    width: int = 128  # 64x64 with width 128: the seed's 1024-512-256-128 stack
    batch_size: int = 64
    steps: int = 200
    warmup: int = 10  # untimed: lazy CUDA init, cuDNN algorithm choice
    chunk: int = 25  # steps per train() call between clock checks
    run_cap_s: float = 3.5  # one timed run stops here even if short of `steps` (16 per phase)
    share_image_size: int = 32  # the cluster spec's images and width
    share_width: int = 64
    share_threads: int = 2
    share_s: float = 8.0
    ckpt_image_size: int = 16
    ckpt_width: int = 16
    ckpt_batch_size: int = 32
    ckpt_steps: int = 5
    som_n: int = 20000
    som_dim: int = 784
    som_map: int = 20
    som_epochs: int = 10
    sweep_trainer: str = "dcgan"
    sweep_dataset: dict | str = field(default_factory=lambda: {"name": "digits",
                                                               "image_size": 32})
    sweep_fixed: dict = field(default_factory=lambda: {"batch_size": 128, "code_length": 64,
                                                       "width": 64})
    sweep_trials: int = 8
    sweep_steps: int = 400
    sweep_cpu: float = 2.0
    caps: dict = field(default_factory=lambda: {"gan": 70.0, "share": 45.0, "som": 30.0,
                                                "checkpoint": 20.0, "sweep": 90.0})


FULL = Sizes()
TINY = Sizes(image_size=8, width=8, batch_size=16, steps=6, warmup=2, chunk=3, run_cap_s=2.0,
             share_image_size=8, share_width=8, share_threads=1, share_s=1.0,
             ckpt_image_size=8, ckpt_width=8, ckpt_batch_size=16, ckpt_steps=3,
             som_n=600, som_dim=16, som_map=4, som_epochs=3,
             sweep_trainer="gan", sweep_dataset="ring8",
             sweep_fixed={"width": 16, "batch_size": 64}, sweep_trials=4, sweep_steps=20,
             sweep_cpu=0.5,
             # a rehearsal's arms are mostly Ray and driver start-up, which a busy 2-core CI
             # machine stretches past 40 s each (the 90 s phase cap cut one arm there)
             caps={**Sizes().caps, "sweep": 200.0})
PHASES = ("gan", "share", "som", "checkpoint", "sweep")


class Record:
    """The JSON, rewritten whole (atomically) after every change worth keeping."""

    def __init__(self, path: Path, head: dict):
        self.path, self.data = path, {**head, "phases": {}, "finished": False}
        self.lock = threading.Lock()
        self.save()

    def save(self) -> None:
        with self.lock:
            write_json(self.path, self.data)


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)


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


class PhaseProcess:
    """One phase in a process group of its own: `run(deadline)` waits until it ends or its
    hard cap passes, then kills the group (Ray's processes, spawned trainers and all)."""

    current: PhaseProcess | None = None  # what the watchdog kills if the run overruns

    def __init__(self, name: str, sizes: Sizes, device: str, out_dir: Path, env: dict):
        self.name, self.sizes, self.device, self.env = name, sizes, device, env
        self.result_path = out_dir / f"phase-{name}.json"
        self.log_path = out_dir / f"phase-{name}.log"
        self.proc: subprocess.Popen | None = None

    def run(self, deadline: float) -> dict:
        self.result_path.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--phase-child", self.name,
               "--child-args", json.dumps({"sizes": asdict(self.sizes), "device": self.device,
                                           "deadline": deadline,
                                           "result": str(self.result_path)})]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, cwd=ROOT, env=self.env)
            PhaseProcess.current = self
            try:
                rc = self.proc.wait(timeout=max(1.0, deadline + PHASE_GRACE_S - time.time()))
                killed = None
            except subprocess.TimeoutExpired:
                self.kill()
                rc = self.proc.wait()
                killed = (f"killed {PHASE_GRACE_S:g} s past its deadline (its hard cap): "
                          "what it had finished is kept")
            finally:
                PhaseProcess.current = None
        result = self._read()
        if killed:
            result["error"] = killed
        elif rc != 0 and "error" not in result:
            tail = self.log_path.read_text().splitlines()[-12:]
            result.update(error=f"the phase's process exited with {rc}", log_tail=tail)
        return result

    def _read(self) -> dict:
        try:
            return json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            return {}

    def kill(self) -> None:
        """SIGTERM to the group (a sweep's driver stops its trials), then SIGKILL to whatever
        of it is left, and wait until it is gone."""
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for _ in range(50):
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def phase_child(name: str, args: dict) -> int:
    """In the phase's own process: run it, handing each finished part to the result file."""
    use_checkout()
    import torch

    if "OMP_NUM_THREADS" not in os.environ:  # a shared machine's setting is kept
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    if name == "sweep":
        from benchmarks.gpu_sweep import sweep_phase as fn
    else:
        from benchmarks.gpu_models import PHASES as MODEL_PHASES

        fn = MODEL_PHASES[name]
    path, partial = Path(args["result"]), {}

    def note(key: str, value) -> None:
        partial[key] = value
        write_json(path, partial)

    try:
        result = fn(Sizes(**args["sizes"]), args["device"], args["deadline"], note)
    except Exception as exc:  # recorded in the JSON: the run goes on to the next phase
        result = {**partial, "error": f"{type(exc).__name__}: {exc}",
                  "traceback": traceback.format_exc(limit=6).splitlines()[-12:]}
    write_json(path, result)
    return 0


def watchdog(record: Record, end: float) -> None:
    """The run's own hard cap: past it, whatever runs is killed and marked, and the run ends."""
    def fire():
        time.sleep(max(0.0, end + WATCHDOG_GRACE_S - time.time()))
        running = PhaseProcess.current
        if running is not None:
            running.kill()
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


def version(name: str) -> str | None:
    """An installed distribution's version without importing it (None: not importable)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    if not importable(name):
        return None
    try:
        return dist_version(name)
    except PackageNotFoundError:
        return "unknown"


def environment(cuda: bool) -> dict:
    import numpy as np
    import torch

    import gansweep.trainers

    env = {
        "python": platform.python_version(), "torch": torch.__version__,
        "torch_cuda": torch.version.cuda, "numpy": np.__version__,
        "ray": version("ray"), "optuna": version("optuna"),
        "gansweep_source": str(Path(gansweep.trainers.__file__).parent.parent),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
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
    share = phases.get("share", {}).get("four_vs_alone_total")
    arms = phases.get("sweep", {}).get("arms", {})
    util = arms.get("quarter", {}).get("utilisation", {}).get("mean_while_training")
    rates = [arms.get(a, {}).get("configs_per_min") for a in ("quarter", "whole")]
    return {
        "bf16_vs_fp32_at_64px": {"want": f">= {AMP_TARGET}x", "ratios": amp,
                                 "met": None if None in amp.values()
                                 else all(r >= AMP_TARGET for r in amp.values())},
        "four_processes_per_gpu": {"want": "more steps per second in all than one alone",
                                   "ratio": share, "met": None if share is None else share > 1},
        "four_trials_per_gpu": {
            "want": f"mean utilisation >= {UTIL_TARGET:g} % while trials train, and more "
                    "configurations per minute than one trial per GPU",
            "utilisation_mean": util, "configs_per_min_quarter_whole": rates,
            "met": None if util is None or None in rates
            else util >= UTIL_TARGET and rates[0] > rates[1]},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path,
                   help="where gpu.json and each phase's log go (created if missing)")
    p.add_argument("--cpu-only", action="store_true",
                   help="skip what needs CUDA even if there is some; rehearse on the CPU")
    p.add_argument("--quick", action="store_true", help="tiny sizes on the GPU (smoke test)")
    p.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all phases")
    p.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset")
    p.add_argument("--sweep-trials", type=int, help="configurations per sweep arm")
    p.add_argument("--sweep-steps", type=int, help="training steps per sweep trial")
    p.add_argument("--phase-child", help=argparse.SUPPRESS)
    p.add_argument("--child-args", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase_child:
        return phase_child(args.phase_child, json.loads(args.child_args))
    if args.out_dir is None:
        p.error("give --out-dir DIR: gpu.json and each phase's log are written there")
    names = [n for n in args.phases.split(",") if n]
    unknown = sorted(set(names) - set(PHASES))
    if unknown:
        p.error(f"--phases: unknown {', '.join(unknown)}; use some of {', '.join(PHASES)}")
    missing = [m for m in ("torch", "numpy") if not importable(m)]
    if missing:
        p.error(f"this Python ({sys.executable}) lacks {' and '.join(missing)}, which every "
                "phase needs; use the Python that has PyTorch")
    use_checkout()
    import torch

    cuda = torch.cuda.is_available() and not args.cpu_only
    why_not = None if cuda else ("--cpu-only given" if torch.cuda.is_available()
                                 else "no CUDA device")
    sizes = FULL if cuda and not args.quick else TINY
    sizes = replace(sizes, sweep_trials=args.sweep_trials or sizes.sweep_trials,
                    sweep_steps=args.sweep_steps or sizes.sweep_steps)
    started = time.time()
    end = started + args.budget
    without = [m for m in NEEDS_RAY if not importable(m)]
    record = Record(args.out_dir / "gpu.json", {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "mode": "gpu" if cuda else "cpu rehearsal", "cuda": cuda, "skipped_reason": why_not,
        "budget_s": args.budget, "sizes": asdict(sizes), "environment": environment(cuda)})
    watchdog(record, end)
    device = "cuda" if cuda else "cpu"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in names:
        if name == "sweep" and without:
            record.data["phases"][name] = {
                "skipped": f"{' and '.join(without)} not importable here: the sweep phase runs "
                           "where gansweep is installed with its dependencies"}
            record.save()
            continue
        runner = PhaseProcess(name, sizes, device, args.out_dir, env)
        run = runner.run
        if not cuda:  # rehearse, and say plainly that nothing was measured
            run = (lambda r: lambda dl: {"skipped": why_not, "rehearsal_on_cpu": r(dl)})(run)
        run_phase(record, name, run, sizes.caps[name], end)
    record.data.update(targets=targets(record.data["phases"]) if cuda else None,
                       wall_s=round(time.time() - started, 1), finished=True)
    record.save()
    print(f"[gpu_check] wrote {record.path} in {record.data['wall_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
