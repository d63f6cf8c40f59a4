"""The model phases of benchmarks/gpu_check.py: GAN families in fp32 and bf16 autocast (and
channels_last where they convolve), checkpoints across devices, the SOM on two devices.

Nothing here names a family: the GAN families are the registry's trainers whose OUTPUT is
samples, fed digits when they take images and ring8 otherwise, given only the
hyperparameters their schema has; conv families are the ones whose networks hold a conv.
"""
from __future__ import annotations

import functools
import json
import math
import tempfile
import time

import numpy as np
import torch
from torch import nn

from gansweep.analysis.layout import STATE, TrialStore
from gansweep.trainers.data import Dataset, load_dataset
from gansweep.trainers.registry import TRAINERS, build, get_trainer

SOM_QE_REL_TOL, SOM_TE_ABS_TOL = 1e-3, 5e-3  # GPU against CPU, same start, same epochs


@functools.lru_cache(maxsize=4)
def _cached(dataset_json: str, image_size: int | None) -> Dataset:
    return load_dataset(json.loads(dataset_json), image_size=image_size)


def loader(dataset, image_size=None) -> Dataset:
    """Each dataset once: timing runs rebuild trainers, not data."""
    return _cached(json.dumps(dataset, sort_keys=True), image_size)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gan_families(sizes) -> dict[str, tuple]:
    """{name: (dataset, overrides)} for every trainer that leaves samples."""
    out = {}
    for name in TRAINERS:
        cls = get_trainer(name)
        if cls.OUTPUT != "samples":
            continue
        image = "image" in cls.data_kinds
        dataset = {"name": "digits", "image_size": sizes.image_size} if image else "ring8"
        wanted = {"image_size": sizes.image_size, "width": sizes.width,
                  "batch_size": sizes.batch_size}
        out[name] = (dataset, {k: v for k, v in wanted.items() if k in cls.HPARAMS})
    return out


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
    trainer = build(name, dataset, overrides, seed=0, device=device, loader=loader)
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


def max_abs_diff(a, b) -> float:
    """Largest difference between two state dicts' floating-point tensors (on the CPU)."""
    if isinstance(a, dict):
        return max((max_abs_diff(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        return max((max_abs_diff(x, y) for x, y in zip(a, b)), default=0.0)
    if torch.is_tensor(a) and a.is_floating_point():
        return float((a.detach().cpu() - b.detach().cpu()).abs().max()) if a.numel() else 0.0
    return 0.0


def checkpoint_round_trip(name: str, dataset, overrides: dict, device: str, sizes) -> dict:
    """Trained on `device`, stored through the trial store, resumed on the CPU, stored again,
    resumed on `device`: what a sweep does when a trial moves between a GPU and a CPU node."""
    def make(on: str):
        return build(name, dataset, overrides, seed=0, device=on, loader=loader)

    with tempfile.TemporaryDirectory() as tmp:
        store, key, n = TrialStore(tmp), "k", sizes.ckpt_steps
        first = make(device)
        first.train(n)
        store.write_torch(key, STATE, first.state_dict())
        on_cpu = make("cpu")
        on_cpu.load_state_dict(store.read_torch(key, STATE))
        loaded_diff = max_abs_diff(first.state_dict(), on_cpu.state_dict())
        sample_diff = float((first.sample(64) - on_cpu.sample(64)).abs().max())
        cpu_losses = on_cpu.train(n)
        store.write_torch(key, STATE, on_cpu.state_dict())
        back = make(device)
        back.load_state_dict(store.read_torch(key, STATE))
        back_diff = max_abs_diff(on_cpu.state_dict(), back.state_dict())
        back_losses = back.train(n)
    return {"devices": [device, "cpu", device], "steps": [n, 2 * n, back.step],
            "resumed_step_ok": back.step == 3 * n,
            "state_identical_after_each_load": loaded_diff == 0.0 and back_diff == 0.0,
            "samples_max_abs_diff_device_vs_cpu": round(sample_diff, 6),
            "losses_finite": finite([cpu_losses, back_losses])}


def gan_phase(sizes, device: str, deadline: float) -> dict:
    families = {}
    for name, (dataset, overrides) in gan_families(sizes).items():
        if time.time() >= deadline:
            families[name] = {"skipped": "phase time cap reached"}
            continue

        def run(amp: bool, cl: bool = False, name=name, dataset=dataset, overrides=overrides):
            cap = min(sizes.run_cap_s, max(0.5, deadline - time.time()))
            return timed_run(name, dataset, {**overrides, "amp": amp}, device, sizes, cap, cl)

        r = {"dataset": dataset, "overrides": overrides, "fp32": run(False), "amp": run(True)}
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
        r["checkpoint"] = checkpoint_round_trip(name, dataset, overrides, device, sizes)
        families[name] = r
        print(f"[gpu_check] gan {name}: fp32 {r['fp32']['steps_per_s']} steps/s, amp "
              f"{r['amp']['steps_per_s']} (x{r['amp_ratio']})", flush=True)
    return {"device": device, "families": families}


def blobs(sizes) -> np.ndarray:
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(n_samples=sizes.som_n, n_features=sizes.som_dim, centers=20,
                      random_state=0)
    return x.astype(np.float32)


def som_phase(sizes, devices: tuple[str, str], deadline: float) -> dict:
    """The same map (seed, start, epochs) trained on each device, epoch by epoch; compared at
    the epochs both reached. sigma0 3 as in benchmarks/som_speed.py (a 20x20 map started at
    radius 10 collapses in a few epochs)."""
    from gansweep.analysis.metrics import som_scores
    from gansweep.trainers.som import SOM

    x = blobs(sizes)
    data = Dataset("blobs", "vector", x, x[:1])
    config = {"rows": sizes.som_map, "cols": sizes.som_map, "epochs": sizes.som_epochs,
              "sigma0": 3.0}
    runs, snapshots = {}, []
    for i, device in enumerate(devices):
        som = SOM(config, data, device=device, seed=0)
        times, weights = [], []
        while som.step < sizes.som_epochs and time.time() < deadline:
            t0 = time.perf_counter()
            som.train(1)
            sync(device)
            times.append(time.perf_counter() - t0)
            weights.append(som.weights())
        snapshots.append(weights)
        runs[f"{i}:{device}"] = {"device": device, "epochs": len(times),
                                 "epoch_s": [round(t, 4) for t in times],
                                 "median_epoch_s": float(np.median(times)) if times else None,
                                 "threads": torch.get_num_threads()}
    epochs = min(len(w) for w in snapshots)
    out = {"data": f"{len(x)} x {x.shape[1]}", "map": f"{sizes.som_map}x{sizes.som_map}",
           "config": config, "runs": runs, "compared_at_epoch": epochs,
           "tolerance": {"quantization_error_relative": SOM_QE_REL_TOL,
                         "topographic_error_absolute": SOM_TE_ABS_TOL}}
    if not epochs:
        return {**out, "same_result": None}
    a, b = (som_scores(w[epochs - 1], x) for w in snapshots)
    first, second = (r["median_epoch_s"] for r in runs.values())
    qe_rel = abs(a["quantization_error"] - b["quantization_error"]) / b["quantization_error"]
    te_abs = abs(a["topographic_error"] - b["topographic_error"])
    out.update(scores=[a, b], quantization_error_relative_diff=qe_rel,
               topographic_error_abs_diff=te_abs,
               weights_max_abs_diff=float(np.abs(snapshots[0][epochs - 1]
                                                 - snapshots[1][epochs - 1]).max()),
               speedup_median_epoch=round(second / first, 2) if first else None,
               same_result=bool(qe_rel <= SOM_QE_REL_TOL and te_abs <= SOM_TE_ABS_TOL))
    return out
