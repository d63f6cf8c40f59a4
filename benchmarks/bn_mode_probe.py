"""Does sampling an image generator in eval mode cost quality when `ema` averages its weights?

gansweep samples in eval mode (running batch-norm statistics: each sample depends on its own
code only). The averaged copy carries the *live* generator's running statistics, which belong
to other weights. This trains one run and, every 500 steps, scores the sampling network both
ways on the same codes: eval mode, and train mode (the batch's own statistics).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_mode_probe.py dcgan ema=0.999
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_mode_probe.py dcgan ema=0

Prints one line per score; the figures are in benchmarks/results/digits_probes.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from analysis.metrics import default_n, score
from trainers.convnets import uniform_code
from trainers.data import load_dataset
from trainers.hparams import parse_sets
from trainers.registry import get_trainer


def main(trainer: str, sets: list[str], blocks: int = 8, every: int = 500) -> None:
    torch.set_num_threads(1)
    data = load_dataset({"name": "digits", "image_size": 16})
    cls = get_trainer(trainer)
    tr = cls({"image_size": 16, **parse_sets(cls.HPARAMS, sets, trainer)}, data, seed=0)
    n = default_n(data)
    for _ in range(blocks):
        tr.train(every)
        out = {}
        for mode in ("eval", "train"):
            net, was = tr.sampler, tr.sampler.training
            net.train(mode == "train")
            with torch.no_grad():
                z = uniform_code(torch.Generator().manual_seed(5), n, tr.config["code_length"],
                                 tr.device)
                x = net(z).float().cpu().numpy()
            net.train(was)
            s = score(x, data, full=True)
            out[mode] = (round(s["coverage"], 3),
                         round(min(s[f"class_hist_{i}"] for i in range(10)), 3))
        print(tr.step, out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
