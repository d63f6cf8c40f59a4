"""The `gansweep` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainers.errors import ConfigError


def cmd_train(args: argparse.Namespace) -> int:
    from trainers.hparams import parse_sets
    from trainers.registry import get_trainer
    from trainers.run import train_to_dir

    cls = get_trainer(args.trainer)
    overrides = parse_sets(cls.HPARAMS, args.set, f"trainer {args.trainer}")
    if args.steps < 1:
        raise ConfigError("--steps must be at least 1")
    train_to_dir(args.trainer, args.dataset, overrides, args.steps, Path(args.out),
                 seed=args.seed, report_every=args.report_every, score_every=args.score_every,
                 resume=args.resume, device=args.device)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gansweep", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one configuration without a sweep")
    t.add_argument("trainer", help="dcgan | wgan | wgan-gp | gan | som")
    t.add_argument("--dataset", required=True,
                   help="ring8, grid25, gauss1d, digits, olivetti, fashion-mnist or a path")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter, e.g. --set lr_g=2e-4 (repeatable)")
    t.add_argument("--steps", type=int, default=1000, help="training steps (som: epochs)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--report-every", type=int, default=100)
    t.add_argument("--score-every", type=int, default=None,
                   help="steps between full quality scores (default: only at the end)")
    t.add_argument("--out", required=True, help="run directory to write")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda if visible)")
    t.set_defaults(func=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"gansweep {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
