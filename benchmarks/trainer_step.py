"""Steps per second of the DCGAN and WGAN-GP trainers against a hand-written PyTorch loop.

The plain loop builds the same networks from trainers/convnets.py under the same seed, with
the same optimisers, batch size, critic steps and random draws, so it must end with the very
same weights as the trainer: the script checks that before timing, so the two sides do the
same work and any gap is the trainer's own overhead. Many short repetitions alternate which
side runs first (a shared machine's load drifts), and the medians are reported on both
clocks: process CPU time (what the step costs) and wall time. Operator calls per step, counted
by the profiler, give a measure of the trainer's extra work that no load on the machine moves.

    .venv/bin/python benchmarks/trainer_step.py            # writes results/trainer_step.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gansweep.trainers.convnets import discriminator, generator
from gansweep.trainers.registry import build


def plain_dcgan(c: dict, x: torch.Tensor, seed: int) -> tuple[torch.nn.Module, Callable[[], None]]:
    """examples/dcgan's step, written out with nothing in between."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G = generator(c["code_length"], c["image_size"], c["width"], x.shape[1])
    D = discriminator(c["image_size"], c["width"], x.shape[1], "batch")
    opt_g = torch.optim.Adam(G.parameters(), lr=c["lr_g"], betas=(c["beta1"], c["beta2"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=c["lr_d"], betas=(c["beta1"], c["beta2"]))
    n = c["batch_size"]

    def step() -> None:
        real = x[torch.randint(len(x), (n,), generator=gen)]
        z = torch.rand(n, c["code_length"], 1, 1, generator=gen) * 2 - 1
        fake = G(z)
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        loss_g = F.softplus(-D(fake)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return G, step


def plain_wgan_gp(c: dict, x: torch.Tensor,
                  seed: int) -> tuple[torch.nn.Module, Callable[[], None]]:
    """The WGAN-GP paper's Algorithm 1, written out with nothing in between."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    G = generator(c["code_length"], c["image_size"], c["width"], x.shape[1])
    D = discriminator(c["image_size"], c["width"], x.shape[1], "layer")
    opt_g = torch.optim.Adam(G.parameters(), lr=c["lr_g"], betas=(c["beta1"], c["beta2"]))
    opt_d = torch.optim.Adam(D.parameters(), lr=c["lr_d"], betas=(c["beta1"], c["beta2"]))
    n = c["batch_size"]

    def step() -> None:
        for _ in range(c["n_critic"]):
            real = x[torch.randint(len(x), (n,), generator=gen)]
            z = torch.rand(n, c["code_length"], 1, 1, generator=gen) * 2 - 1
            with torch.no_grad():
                fake = G(z)
            wasserstein = D(real).mean() - D(fake).mean()
            eps = torch.rand(n, 1, 1, 1, generator=gen)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
            gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss_d = -wasserstein + c["gp_lambda"] * gp
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        z = torch.rand(n, c["code_length"], 1, 1, generator=gen) * 2 - 1
        loss_g = -D(G(z)).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()

    return G, step


PLAIN = {"dcgan": plain_dcgan, "wgan-gp": plain_wgan_gp}


def aten_ops_per_step(run: Callable[[int], object], steps: int = 4) -> float:
    """ATen operator calls (nested ones included) per generator step of `run(steps)`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(steps)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / steps


def timed(run: Callable[[], None]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - c0, time.perf_counter() - w0


def bench(name: str, settings: dict, steps: int, reps: int, seed: int = 0) -> dict:
    trainer = build(name, "digits", settings, seed=seed, device="cpu")
    G, step = PLAIN[name](trainer.config, trainer.train_x, seed)

    def plain(k: int) -> None:
        for _ in range(k):
            step()

    # Same work: after the same steps both sides hold the same generator, bit for bit. (Float
    # sums in another order would differ in the last bits; we compare loosely then.)
    trainer.train(2)
    plain(2)
    same = all(torch.equal(a, b) for a, b in zip(trainer.G.state_dict().values(),
                                                 G.state_dict().values()))
    close = all(torch.allclose(a.float(), b.float(), atol=1e-5)
                for a, b in zip(trainer.G.state_dict().values(), G.state_dict().values()))
    assert close, f"{name}: the plain loop does not do the trainer's work"
    ops = {"trainer": aten_ops_per_step(trainer.train), "plain": aten_ops_per_step(plain)}

    cpu: dict[str, list[float]] = {"trainer": [], "plain": []}
    wall: dict[str, list[float]] = {"trainer": [], "plain": []}
    sides = {"trainer": lambda: trainer.train(steps), "plain": lambda: plain(steps)}
    for rep in range(reps):
        for side in (("trainer", "plain") if rep % 2 == 0 else ("plain", "trainer")):
            c, w = timed(sides[side])
            cpu[side].append(steps / c)
            wall[side].append(steps / w)
    med = {clock: {s: statistics.median(v[s]) for s in v} for clock, v in
           (("cpu", cpu), ("wall", wall))}
    paired = [t / p for t, p in zip(cpu["trainer"], cpu["plain"])]
    return {
        "config": trainer.config, "steps_per_rep": steps, "reps": reps,
        "generator_bit_identical_to_plain": same,
        "trainer_steps_per_s": round(med["cpu"]["trainer"], 3),
        "plain_steps_per_s": round(med["cpu"]["plain"], 3),
        "ratio": round(med["cpu"]["trainer"] / med["cpu"]["plain"], 4),
        "ratio_paired_median": round(statistics.median(paired), 4),
        "wall_trainer_steps_per_s": round(med["wall"]["trainer"], 3),
        "wall_plain_steps_per_s": round(med["wall"]["plain"], 3),
        "wall_ratio": round(med["wall"]["trainer"] / med["wall"]["plain"], 4),
        "aten_ops_per_step": ops,
        "cpu_steps_per_s": {s: [round(v, 3) for v in cpu[s]] for s in cpu},
        "wall_steps_per_s": {s: [round(v, 3) for v in wall[s]] for s in wall},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=25)
    p.add_argument("--dcgan-steps", type=int, default=8, help="generator steps per repetition")
    p.add_argument("--wgan-gp-steps", type=int, default=2, help="generator steps per repetition")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "trainer_step.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    settings = {"image_size": args.image_size, "width": args.width,
                "batch_size": args.batch_size}
    started = time.perf_counter()
    load_before = os.getloadavg()
    results = {name: bench(name, settings, steps, args.reps)
               for name, steps in (("dcgan", args.dcgan_steps),
                                   ("wgan-gp", args.wgan_gp_steps))}
    record = {
        "command": " ".join([".venv/bin/python", "benchmarks/trainer_step.py", *sys.argv[1:]]),
        "what": "generator steps/s through Trainer.train() vs a hand-written loop on the same "
                "networks; medians over interleaved repetitions; ratio = trainer / plain on "
                "process CPU time (wall-clock figures alongside)",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
        "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(), "dataset": "digits", "settings": settings,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2, default=str) + "\n")
    for name, r in results.items():
        print(f"{name}: trainer {r['trainer_steps_per_s']:.2f} steps/s, plain "
              f"{r['plain_steps_per_s']:.2f} steps/s, ratio {r['ratio']:.3f} (paired "
              f"{r['ratio_paired_median']:.3f}; wall {r['wall_ratio']:.3f}); "
              f"bit-identical: {r['generator_bit_identical_to_plain']}; aten ops/step "
              f"{r['aten_ops_per_step']['trainer']:g} vs {r['aten_ops_per_step']['plain']:g}")
    print(f"wrote {args.out} in {record['seconds']} s")


if __name__ == "__main__":
    main()
