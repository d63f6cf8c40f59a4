"""The `gansweep` command line."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gansweep.trainers.errors import ConfigError, Interrupted


def cmd_train(args: argparse.Namespace) -> int:
    from gansweep.jobs.train_cmd import returned_configuration, train_to_dir
    from gansweep.trainers.hparams import parse_sets
    from gansweep.trainers.registry import get_trainer

    base: dict = {}
    steps, seed, every, score_every = args.steps, args.seed, args.report_every, args.score_every
    trainer, dataset = args.trainer, args.dataset
    if args.from_sweep:
        if trainer or dataset:
            raise ConfigError("--from trains the sweep's trainer on its dataset: drop the "
                              "trainer and --dataset (use --set to change a hyperparameter)")
        got = returned_configuration(args.from_sweep, log=print)
        trainer, dataset, base = got["trainer"], got["dataset"], got["config"]
        steps = got["steps"] if steps is None else steps
        seed = got["seed"] if seed is None else seed
        every = every or got["report_every"]
        score_every = score_every or got["score_every"]
    elif not trainer or not dataset:
        raise ConfigError("give a trainer and --dataset (e.g. gansweep train gan --dataset "
                          "ring8 --out runs/r), or --from SWEEP_DIR")
    cls = get_trainer(trainer)
    overrides = {**base, **parse_sets(cls.HPARAMS, args.set, f"trainer {trainer}")}
    steps = 1000 if steps is None else steps
    seed, every = 0 if seed is None else seed, every or 100
    if steps < 1:
        raise ConfigError("--steps must be at least 1")
    train_to_dir(trainer, dataset, overrides, steps, Path(args.out), seed=seed,
                 report_every=every, score_every=score_every, resume=args.resume,
                 device=args.device)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from gansweep.jobs.spec import load_spec
    from gansweep.jobs.submit import submit

    submit(load_spec(args.spec), address=args.address)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from gansweep.jobs.submit import resume

    resume(args.sweep_dir, address=args.address, trials=args.trials,
           budget=parse_budget(args.budget), study_url=args.study)
    return 0


def parse_budget(items: list[str]) -> dict:
    """`--budget steps=400000 --budget hours=2` (or `steps=400000,hours=2`) as a budget."""
    out: dict = {}
    for item in (p for i in items for p in i.split(",") if p.strip()):
        key, sep, text = item.partition("=")
        key = key.strip()
        try:
            if not sep or key not in ("steps", "hours"):
                raise ValueError
            value = int(float(text)) if key == "steps" else float(text)
            if value <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--budget {item!r}: write steps=N (training steps over all "
                              "runs, in total) or hours=H (wall-clock, in total), e.g. "
                              "--budget steps=400000") from None
        out[key] = value
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from gansweep.jobs.status import as_json, collect, format_status

    s = collect(args.sweep_dir)
    print(as_json(s) if args.json else format_status(s))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from gansweep.jobs.report_cmd import report

    report(args.sweep_dirs, args.out)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from gansweep.jobs.rerun import rerun

    rerun(args.sweep_dir, top=args.top, seeds=args.seeds, address=args.address,
          resume=args.resume)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gansweep.jobs.demo import run_demo

    run_demo(Path(args.out), address=args.address)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gansweep", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one configuration without a sweep")
    t.add_argument("trainer", nargs="?", help="dcgan | wgan | wgan-gp | gan | som")
    t.add_argument("--dataset", default=None,
                   help="ring8, grid25, gauss1d, digits, olivetti, fashion-mnist or a path")
    t.add_argument("--from", dest="from_sweep", metavar="SWEEP_DIR", default=None,
                   help="train the configuration the sweep returned (its seed-robust best), "
                        "on a seed it never trained with unless --seed is given")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a hyperparameter, e.g. --set lr_g=2e-4 (repeatable)")
    t.add_argument("--steps", type=int, default=None,
                   help="training steps (som: epochs); default 1000, or the sweep's")
    t.add_argument("--seed", type=int, default=None, help="default 0, or a fresh one")
    t.add_argument("--report-every", type=int, default=None,
                   help="default 100, or the sweep's")
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
    r.add_argument("--budget", action="append", default=[], metavar="steps=N|hours=H",
                   help="raise the budget to this total (repeatable)")
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

    from gansweep.jobs.eval_cmd import add_parser as add_eval_parser  # `gansweep eval`

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
