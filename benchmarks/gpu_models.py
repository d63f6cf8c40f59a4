"""The phases of benchmarks/gpu_check.py that need only PyTorch (and numpy): GAN families in
fp32 and bf16 autocast (and channels_last where they convolve), four trainer processes sharing
one GPU against one alone, the SOM on two devices, checkpoints across devices.

They run where Ray, Optuna, scikit-learn, scipy and pyarrow are missing (a freshly provisioned
GPU machine), so nothing here imports them: the data are made here (random images and vectors;
a step costs the same whatever the pixels), checkpoints go through torch.save and the
weights-only torch.load the trial store uses, the SOM's errors are computed in torch.

Nothing names a family: the GAN families are the registry's trainers whose OUTPUT is samples,
given only the hyperparameters their schema has; conv families are those whose networks hold a
conv. Every phase is `phase(sizes, device, deadline, note)`: it stops starting work at
`deadline` and hands each finished part to `note(key, value)`, so a phase killed at its hard
cap still leaves what it measured.
"""
from __future__ import annotations

import io
import math
import multiprocessing
import queue
import time

from benchmarks.gpu_check import use_checkout

use_checkout()

import numpy as np
import torch
from torch import nn

from gansweep.trainers.data import Dataset
from gansweep.trainers.registry import TRAINERS, build, get_trainer

SOM_QE_REL_TOL, SOM_TE_ABS_TOL = 1e-3, 5e-3  # GPU against CPU, same start, same epochs
SHARE_FAMILY = "dcgan"  # the cluster spec's family: what four trials on one GPU would train


def synthetic(dataset: dict, image_size: int | None = None) -> Dataset:
    """A registry `loader`: {"kind": "image"|"vector", "n": N, "dim"/"image_size": ...}."""
    gen = np.random.default_rng(0)
    n = dataset["n"]
    if dataset["kind"] == "image":
        size = image_size or dataset["image_size"]
        x = gen.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    else:
        x = gen.normal(0, 1, (n, dataset["dim"])).astype(np.float32)
    return Dataset(f"synthetic-{dataset['kind']}", dataset["kind"], x, x[: max(1, n // 8)])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gan_families(image_size: int, width: int, batch_size: int) -> dict[str, tuple]:
    """{name: (dataset, overrides)} for every trainer that leaves samples."""
    out = {}
    for name in TRAINERS:
        cls = get_trainer(name)
        if cls.OUTPUT != "samples":
            continue
        image = "image" in cls.data_kinds
        dataset = ({"kind": "image", "n": 2048, "image_size": image_size} if image
                   else {"kind": "vector", "n": 4096, "dim": 2})
        wanted = {"image_size": image_size, "width": width, "batch_size": batch_size}
        out[name] = (dataset, {k: v for k, v in wanted.items() if k in cls.HPARAMS})
    return out


def make(name: str, dataset: dict, overrides: dict, device: str, seed: int = 0):
    return build(name, dataset, overrides, seed=seed, device=device, loader=synthetic)


def networks(trainer) -> list[nn.Module]:
    return [m for m in vars(trainer).values() if isinstance(m, nn.Module)]


def to_channels_last(trainer) -> bool:
    """Networks and the real images in channels_last; False (and nothing changed) for a
    trainer without convolutions. Done before the first step, so optimiser state follows."""
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    if not any(isinstance(m, convs) for net in networks(trainer) for m in net.modules()):
        return False
    for net in networks(trainer):
        net.to(memory_format=torch.channels_last)
    if trainer.train_x.dim() == 4:
        trainer.train_x = trainer.train_x.contiguous(memory_format=torch.channels_last)
    return True


def finite(rows: list[dict]) -> bool:
    return all(math.isfinite(v) for row in rows for v in row.values())


def timed_run(name: str, dataset, overrides: dict, device: str, sizes, cap_s: float,
              channels_last: bool = False) -> dict | None:
    """Steps per second after a warm-up, over `sizes.steps` steps or `cap_s` seconds."""
    trainer = make(name, dataset, overrides, device)
    if channels_last and not to_channels_last(trainer):
        return None
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    losses = [trainer.train(sizes.warmup)]
    sync(device)
    t0, done = time.perf_counter(), 0
    while done < sizes.steps and time.perf_counter() - t0 < cap_s:
        k = min(sizes.chunk, sizes.steps - done)
        losses.append(trainer.train(k))
        done += k
    sync(device)
    seconds = time.perf_counter() - t0
    out = {"steps": done, "seconds": round(seconds, 3),
           "steps_per_s": round(done / seconds, 2) if done else None,
           "losses_finite": finite(losses),
           "last_losses": {k: round(v, 4) for k, v in losses[-1].items()}}
    if device.startswith("cuda"):
        out["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    del trainer
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def _ratio(a: dict | None, b: dict | None) -> float | None:
    if not a or not b or not a["steps_per_s"] or not b["steps_per_s"]:
        return None
    return round(a["steps_per_s"] / b["steps_per_s"], 3)


def gan_phase(sizes, device: str, deadline: float, note) -> dict:
    note("device", device)
    families = {}
    for name, (dataset, overrides) in gan_families(sizes.image_size, sizes.width,
                                                   sizes.batch_size).items():
        if time.time() >= deadline:
            families[name] = {"skipped": "phase time cap reached"}
            continue

        def run(amp: bool, cl: bool = False, name=name, dataset=dataset, overrides=overrides):
            cap = min(sizes.run_cap_s, max(0.5, deadline - time.time()))
            return timed_run(name, dataset, {**overrides, "amp": amp}, device, sizes, cap, cl)

        r = {"overrides": overrides, "fp32": run(False), "amp": run(True)}
        r["amp_ratio"] = _ratio(r["amp"], r["fp32"])
        cl = {"fp32": run(False, True), "amp": run(True, True)}
        if cl["fp32"] is not None:
            # kept only where faster: the trainers have no channels_last option, so this is
            # the figure that would justify one
            cl["ratio_fp32"] = _ratio(cl["fp32"], r["fp32"])
            cl["ratio_amp"] = _ratio(cl["amp"], r["amp"])
            cl["kept"] = {p: bool(cl[f"ratio_{p}"] and cl[f"ratio_{p}"] > 1.0)
                          for p in ("fp32", "amp")}
            best = {p: cl[p] if cl["kept"][p] else r[p] for p in ("fp32", "amp")}
            r["channels_last"] = cl
            r["amp_ratio_best_layout"] = _ratio(best["amp"], best["fp32"])
        families[name] = r
        note("families", families)
        print(f"[gpu_check] gan {name}: fp32 {r['fp32']['steps_per_s']} steps/s, amp "
              f"{r['amp']['steps_per_s']} (x{r['amp_ratio']})", flush=True)
    return {"device": device, "families": families}


# ---- several trainer processes on one device -------------------------------------------------
def share_worker(index: int, job: dict, ready, go, results) -> None:
    """One trainer process: warm up, wait for all, train for `job["seconds"]`, report."""
    torch.set_num_threads(job["threads"])
    trainer = make(SHARE_FAMILY, job["dataset"], job["overrides"], job["device"], seed=index)
    trainer.train(job["warmup"])
    sync(job["device"])
    ready.put(index)
    go.wait()
    t0, steps = time.perf_counter(), 0
    while time.perf_counter() - t0 < job["seconds"]:
        trainer.train(job["chunk"])
        steps += job["chunk"]
    sync(job["device"])
    results.put((index, steps, time.perf_counter() - t0))


def run_processes(count: int, job: dict, deadline: float) -> dict:
    """`count` trainer processes at once; their steps per second alone and together."""
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked into children
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=share_worker, args=(i, job, ready, go, results), daemon=True)
             for i in range(count)]
    for p in procs:
        p.start()
    try:
        waiting = len(procs)
        while waiting:  # every process built and warmed up before the clock starts
            try:
                ready.get(timeout=1.0)
                waiting -= 1
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode is not None]
                if dead:
                    raise RuntimeError(f"a trainer process exited with code {dead[0]} before "
                                       "it was ready (its traceback is in this phase's log)"
                                       ) from None
                if time.time() > deadline - job["seconds"]:
                    raise TimeoutError("the trainer processes were not ready in time") from None
        go.set()
        got = [results.get(timeout=job["seconds"] + 60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    rates = [steps / seconds for _, steps, seconds in sorted(got)]
    return {"processes": count, "steps_per_s_each": [round(r, 2) for r in rates],
            "steps_per_s_total": round(sum(rates), 2)}


def share_phase(sizes, device: str, deadline: float, note) -> dict:
    """Four trainer processes on one device against one alone: what `gpu: 0.25` buys, measured
    without a scheduler (the sweep phase measures it through Ray where Ray is installed)."""
    dataset, overrides = gan_families(sizes.share_image_size, sizes.share_width,
                                      sizes.batch_size)[SHARE_FAMILY]
    job = {"device": device, "dataset": dataset, "overrides": overrides,
           "threads": sizes.share_threads, "warmup": sizes.warmup, "chunk": sizes.chunk,
           "seconds": sizes.share_s}
    note("job", job)
    alone = run_processes(1, job, deadline)
    note("alone", alone)
    together = run_processes(4, job, deadline)
    note("four", together)
    return {"job": job, "alone": alone, "four": together,
            "four_vs_alone_total": round(together["steps_per_s_total"]
                                         / alone["steps_per_s_total"], 3)}


# ---- the SOM ---------------------------------------------------------------------------------
def blobs(sizes) -> np.ndarray:
    """Twenty Gaussian clusters in som_dim dimensions."""
    gen = np.random.default_rng(0)
    centers = gen.uniform(-10, 10, (20, sizes.som_dim))
    labels = gen.integers(0, 20, sizes.som_n)
    return (centers[labels] + gen.normal(0, 1, (sizes.som_n, sizes.som_dim))).astype(np.float32)


def map_errors(weights: np.ndarray, x: np.ndarray) -> dict[str, float]:
    """Quantization error (mean distance to the best unit) and topographic error (share of
    samples whose best two units are not 8-neighbours), as analysis.metrics.som_scores
    defines them, in float64 torch on the CPU (scipy may be missing here)."""
    rows, cols = weights.shape[:2]
    w = torch.from_numpy(weights.reshape(rows * cols, -1)).double()
    qe, te = 0.0, 0
    for chunk in torch.from_numpy(x).double().split(4096):
        d = torch.cdist(chunk, w)
        two = d.topk(2, largest=False).indices
        qe += float(d.gather(1, two[:, :1]).sum())
        best, second = two[:, 0], two[:, 1]
        cheb = torch.maximum((best // cols - second // cols).abs(),
                             (best % cols - second % cols).abs())
        te += int((cheb > 1).sum())
    return {"quantization_error": qe / len(x), "topographic_error": te / len(x)}


def som_phase(sizes, device: str, deadline: float, note) -> dict:
    """The same map (seed, start, epochs) trained on `device` and on the CPU, epoch by epoch;
    compared at the epochs both reached. sigma0 3 as in benchmarks/som_speed.py (a 20x20 map
    started at radius 10 collapses in a few epochs)."""
    from gansweep.trainers.som import SOM

    x = blobs(sizes)
    data = Dataset("blobs", "vector", x, x[:1])
    config = {"rows": sizes.som_map, "cols": sizes.som_map, "epochs": sizes.som_epochs,
              "sigma0": 3.0}
    runs, snapshots = {}, []
    for i, on in enumerate((device, "cpu")):
        # the CPU leg gets what the first left, up to its own half of the phase
        stop = deadline if i else time.time() + (deadline - time.time()) / 2
        som = SOM(config, data, device=on, seed=0)
        times, weights = [], []
        while som.step < sizes.som_epochs and time.time() < stop:
            t0 = time.perf_counter()
            som.train(1)
            sync(on)
            times.append(time.perf_counter() - t0)
            weights.append(som.weights())
        snapshots.append(weights)
        runs[f"{i}:{on}"] = {"device": on, "epochs": len(times),
                             "epoch_s": [round(t, 4) for t in times],
                             "median_epoch_s": float(np.median(times)) if times else None}
        note("runs", runs)
    epochs = min(len(w) for w in snapshots)
    out = {"data": f"{len(x)} x {x.shape[1]}", "map": f"{sizes.som_map}x{sizes.som_map}",
           "config": config, "runs": runs, "compared_at_epoch": epochs,
           "tolerance": {"quantization_error_relative": SOM_QE_REL_TOL,
                         "topographic_error_absolute": SOM_TE_ABS_TOL}}
    if not epochs:
        return {**out, "same_result": None}
    a, b = (map_errors(w[epochs - 1], x) for w in snapshots)
    first, second = (r["median_epoch_s"] for r in runs.values())
    qe_rel = abs(a["quantization_error"] - b["quantization_error"]) / b["quantization_error"]
    te_abs = abs(a["topographic_error"] - b["topographic_error"])
    out.update(errors=[a, b], quantization_error_relative_diff=qe_rel,
               topographic_error_abs_diff=te_abs,
               weights_max_abs_diff=float(np.abs(snapshots[0][epochs - 1]
                                                 - snapshots[1][epochs - 1]).max()),
               speedup_median_epoch=round(second / first, 2) if first else None,
               same_result=bool(qe_rel <= SOM_QE_REL_TOL and te_abs <= SOM_TE_ABS_TOL))
    return out


# ---- checkpoints across devices --------------------------------------------------------------
def max_abs_diff(a, b) -> float:
    """Largest difference between two state dicts' floating-point tensors (on the CPU)."""
    if isinstance(a, dict):
        return max((max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if torch.is_tensor(a) and a.is_floating_point():
        return float((a.detach().cpu() - b.detach().cpu()).abs().max()) if a.numel() else 0.0
    return 0.0


def stored(state: dict) -> dict:
    """Through bytes and back as the trial store does it: torch.save, then torch.load with
    weights_only=True onto the CPU (analysis/layout.py load_checkpoint)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return torch.load(io.BytesIO(buf.getvalue()), map_location="cpu", weights_only=True)


def checkpoint_round_trip(name: str, dataset, overrides: dict, device: str, n: int) -> dict:
    """Trained on `device`, stored, resumed on the CPU, stored again, resumed on `device`:
    what a sweep does when a trial moves between a GPU and a CPU node."""
    first = make(name, dataset, overrides, device)
    first.train(n)
    on_cpu = make(name, dataset, overrides, "cpu")
    on_cpu.load_state_dict(stored(first.state_dict()))
    loaded_diff = max_abs_diff(first.state_dict(), on_cpu.state_dict())
    sample_diff = float((first.sample(64).cpu() - on_cpu.sample(64)).abs().max())
    cpu_losses = on_cpu.train(n)
    back = make(name, dataset, overrides, device)
    back.load_state_dict(stored(on_cpu.state_dict()))
    back_diff = max_abs_diff(on_cpu.state_dict(), back.state_dict())
    back_losses = back.train(n)
    return {"devices": [device, "cpu", device], "steps": [n, 2 * n, back.step],
            "resumed_step_ok": back.step == 3 * n,
            "state_identical_after_each_load": loaded_diff == 0.0 and back_diff == 0.0,
            "samples_max_abs_diff_device_vs_cpu": round(sample_diff, 6),
            "losses_finite": finite([cpu_losses, back_losses])}


def checkpoint_phase(sizes, device: str, deadline: float, note) -> dict:
    """Every GAN family at a small size, so the CPU leg is as quick as the device's."""
    families = {}
    for name, (dataset, overrides) in gan_families(sizes.ckpt_image_size, sizes.ckpt_width,
                                                   sizes.ckpt_batch_size).items():
        if time.time() >= deadline:
            families[name] = {"skipped": "phase time cap reached"}
            continue
        families[name] = checkpoint_round_trip(name, dataset, overrides, device,
                                               sizes.ckpt_steps)
        note("families", families)
    return {"device": device, "families": families}


PHASES = {"gan": gan_phase, "share": share_phase, "som": som_phase,
          "checkpoint": checkpoint_phase}
