"""Does sampling an image generator in eval mode cost quality when `ema` averages its weights?

gansweep samples in eval mode (running batch-norm statistics: each sample depends on its own
code only). The averaged copy carries the *live* generator's running statistics, which belong
to other weights. This trains one run and, every 500 steps, scores the sampling network
three ways: eval mode with the statistics it carries ("copied"), train mode (the batch's own
statistics, "batch"), and what `Trainer.sample` draws ("sample": with `ema` on, standing
statistics measured on the average first, trainers/stabilisers.py `standing_statistics`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_mode_probe.py dcgan ema=0.999
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bn_mode_probe.py dcgan ema=0

Prints one line per score; the figures are in benchmarks/results/digits_probes.json.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from gansweep.analysis.metrics import default_n, score
from gansweep.trainers.convnets import generate, uniform_code
from gansweep.trainers.data import load_dataset
from gansweep.trainers.hparams import parse_sets
from gansweep.trainers.registry import get_trainer


def main(trainer: str, sets: list[str], blocks: int = 8, every: int = 500) -> None:
    torch.set_num_threads(1)
    data = load_dataset({"name": "digits", "image_size": 16})
    cls = get_trainer(trainer)
    tr = cls({"image_size": 16, **parse_sets(cls.HPARAMS, sets, trainer)}, data, seed=0)
    n = default_n(data)
    for _ in range(blocks):
        tr.train(every)
        out = {}
        for mode in ("copied", "batch", "sample"):
            net, was = tr.sampler, tr.sampler.training
            if mode == "copied":
                x = generate(net, n, tr.config["code_length"], 5, tr.device, tr.autocast)
            elif mode == "sample":
                x = tr.sample(n, seed=5)
            else:  # train mode changes the net's running statistics: a copy's
                with torch.no_grad():
                    z = uniform_code(torch.Generator().manual_seed(5), n,
                                     tr.config["code_length"], tr.device)
                    x = copy.deepcopy(net).train()(z).float().cpu()
            net.train(was)
            s = score(x.numpy(), data, full=True)
            out[mode] = (round(s["coverage"], 3),
                         round(min(s[f"class_hist_{i}"] for i in range(10)), 3))
        print(tr.step, out, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
