"""`gansweep eval`: score a samples file against a dataset's held-out split.

The same `analysis.metrics.score` the trainers report with, on the same reference and in the
same evaluator features, so a model trained elsewhere is compared on equal footing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from gansweep.trainers.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register the `eval` subcommand on the CLI's subparsers."""
    e = sub.add_parser("eval", help="score a samples file against a dataset's held-out split")
    e.add_argument("samples", help=".npy array: N x D vectors, or N x H x W / N x C x H x W "
                                   "images in [-1, 1]")
    e.add_argument("--dataset", required=True,
                   help="ring8, grid25, gauss1d, digits, olivetti, fashion-mnist or a path")
    e.add_argument("--image-size", type=int, default=None,
                   help="score images at this size (default: the dataset's native size)")
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.set_defaults(func=cmd_eval)


def load_samples(path: Path) -> Any:
    import numpy as np

    if not path.is_file():
        raise ConfigError(f"samples file {path} does not exist")
    if path.suffix != ".npy":
        raise ConfigError(f"samples file {path}: give a .npy array (np.save)")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # not an .npy, truncated, or an object array
        raise ConfigError(f"samples file {path} is not a readable numeric .npy ({exc})") from exc


def score_file(samples_path: Path, dataset: str, image_size: int | None = None,
                  warn=lambda msg: print(msg, file=sys.stderr)) -> dict[str, Any]:
    """Metrics of a samples file, with what they were measured against."""
    from gansweep.analysis.metrics import default_n, score, validate_samples
    from gansweep.trainers.data import load_dataset

    raw = load_samples(samples_path)
    data = load_dataset(dataset, image_size=image_size)
    x = validate_samples(raw, data, check_range=True)  # before the evaluator: fail fast
    n = default_n(data)
    if len(x) > n:
        warn(f"note: scoring the first {n} of {len(x)} samples (the fixed n for {data.name})")
        x = x[:n]
    elif len(x) < n:
        warn(f"warning: {len(x)} samples, fewer than the fixed n = {n} for {data.name}: "
             "k-NN scores and fid depend on n, so compare only with runs scored at equal n")
    t0 = time.perf_counter()
    metrics = score(x, data, full=True)
    result: dict[str, Any] = {
        "dataset": data.name, "data_fingerprint": data.fingerprint,
        "sample_shape": list(data.shape), "n": len(x), "n_reference": n,
        "features": "data space",
    }
    if data.kind == "image":
        from gansweep.analysis.evaluator import for_dataset

        result["features"] = for_dataset(data).describe()
    result["metrics"] = metrics
    result["seconds"] = round(time.perf_counter() - t0, 3)
    return result


def format_result(result: dict[str, Any]) -> str:
    head = (f"{result['dataset']}: {result['n']} samples against {result['n_reference']} "
            f"held-out, features: {result['features']}")
    lines = [head]
    width = max(len(k) for k in result["metrics"])
    for key, value in result["metrics"].items():
        shown = str(value) if isinstance(value, int) else f"{value:.4g}"
        lines.append(f"  {key:<{width}}  {shown}")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    result = score_file(Path(args.samples).expanduser(), args.dataset, args.image_size)
    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 0
