"""The `gansweep` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainers.errors import ConfigError, Interrupted


def cmd_train(args: argparse.Namespace) -> int:
    from jobs.train_cmd import train_to_dir
    from trainers.hparams import parse_sets
    from trainers.registry import get_trainer

    cls = get_trainer(args.trainer)
    overrides = parse_sets(cls.HPARAMS, args.set, f"trainer {args.trainer}")
    if args.steps < 1:
        raise ConfigError("--steps must be at least 1")
    train_to_dir(args.trainer, args.dataset, overrides, args.steps, Path(args.out),
                 seed=args.seed, report_every=args.report_every, score_every=args.score_every,
                 resume=args.resume, device=args.device)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from jobs.spec import load_spec
    from jobs.submit import submit

    submit(load_spec(args.spec), address=args.address)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from jobs.submit import resume

    resume(args.sweep_dir, address=args.address, trials=args.trials, study_url=args.study)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from jobs.status import as_json, collect, format_status

    s = collect(args.sweep_dir)
    print(as_json(s) if args.json else format_status(s))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from jobs.report_cmd import report

    report(args.sweep_dirs, args.out)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from jobs.rerun import rerun

    rerun(args.sweep_dir, top=args.top, seeds=args.seeds, address=args.address,
          resume=args.resume)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from jobs.demo import run_demo

    run_demo(Path(args.out), address=args.address)
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

    address_help = "Ray cluster address (default: $RAY_ADDRESS, else a local Ray)"
    s = sub.add_parser("submit", help="start a sweep from a spec")
    s.add_argument("spec", help="sweep spec (YAML); see jobs/specs/")
    s.add_argument("--address", default=None, help=address_help)
    s.set_defaults(func=cmd_submit)

    r = sub.add_parser("resume", help="continue an interrupted sweep, or extend a finished one")
    r.add_argument("sweep_dir")
    r.add_argument("--trials", type=int, default=None,
                   help="raise the number of configurations to N")
    r.add_argument("--study", default=None, metavar="URL",
                   help="the study's database, when it moved or needs a password not in "
                   "PGPASSWORD / ~/.pgpass (postgresql://USER:PASSWORD@HOST:PORT/DB; the "
                   "password is used, never written)")
    r.add_argument("--address", default=None, help=address_help)
    r.set_defaults(func=cmd_resume)

    st = sub.add_parser("status", help="trials by state and the best configuration so far")
    st.add_argument("sweep_dir")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)

    rp = sub.add_parser("report", help="comparison report (HTML, Markdown, CSV) of sweeps")
    rp.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR",
                    help="sweep directories, finished or not (a SWEEP_DIR-rerun is picked up)")
    rp.add_argument("--out", required=True, help="directory for index.html, report.md, "
                    "trials.csv")
    rp.set_defaults(func=cmd_report)

    rr = sub.add_parser("rerun", help="train a sweep's top configurations again under new "
                        "seeds (into SWEEP_DIR-rerun)")
    rr.add_argument("sweep_dir")
    rr.add_argument("--top", type=int, default=3, help="configurations to rerun (default 3)")
    rr.add_argument("--seeds", type=int, default=3, help="new seeds per configuration "
                    "(default 3)")
    rr.add_argument("--resume", action="store_true", help="continue an interrupted rerun")
    rr.add_argument("--address", default=None, help=address_help)
    rr.set_defaults(func=cmd_rerun)

    d = sub.add_parser("demo", help="run the demo sweeps on a local Ray and write the report")
    d.add_argument("--out", default="demo-output")
    d.add_argument("--address", default=None, help=address_help)
    d.set_defaults(func=cmd_demo)

    from jobs.eval_cmd import add_parser as add_eval_parser  # `gansweep eval`

    add_eval_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"gansweep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"gansweep {args.command}: {exc}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
