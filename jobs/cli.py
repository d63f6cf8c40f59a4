"""The `gansweep` command line."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from gansweep.trainers.errors import ConfigError, Interrupted


def check_sweep_arg(value: str, name: str = "SWEEP_DIR") -> None:
    """A sweep directory typed on the command line: a URI with credentials or settings in it
    is refused before it is opened (and before the secret could be printed back)."""
    if "://" in value:
        from gansweep.analysis.layout import check_uri

        try:
            check_uri(value)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def _at_least_1(flag: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{flag} must be at least 1 (got {value})")


def cmd_train(args: argparse.Namespace) -> int:
    from gansweep.jobs.train_cmd import run

    run(trainer=args.trainer, dataset=args.dataset, out=Path(args.out), steps=args.steps,
        sets=args.set, seed=args.seed, from_sweep=args.from_sweep,
        report_every=args.report_every, score_every=args.score_every, resume=args.resume,
        device=args.device, pick=args.pick)
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from gansweep.jobs.spec import load_spec

    # before Ray Tune is even imported: a bad spec fails fast
    spec = load_spec(args.spec, sets=args.set)
    from gansweep.jobs.submit import submit

    submit(spec, address=args.address)
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    check_sweep_arg(args.sweep_dir)
    _at_least_1("--trials", args.trials)
    budget = parse_budget(args.budget)
    if args.study is not None:
        from gansweep.jobs import study

        study.bare(args.study, "--study")
    from gansweep.jobs.submit import resume

    resume(args.sweep_dir, address=args.address, trials=args.trials,
           budget=budget, study_url=args.study, force=args.force)
    return 0


def parse_budget(items: list[str]) -> dict:
    """`--budget steps=400000 --budget hours=2` (or `steps=400000,hours=2`) as a budget;
    `finish_leaders=true` switches budget-aware racing on for what is left."""
    out: dict = {}
    for item in (p for i in items for p in i.split(",") if p.strip()):
        key, sep, text = item.partition("=")
        key = key.strip()
        if key == "finish_leaders" and text.strip().lower() in ("true", "false"):
            out[key] = text.strip().lower() == "true"
            continue
        try:
            if not sep or key not in ("steps", "hours"):
                raise ValueError
            number = float(text)
            if not 0 < number < math.inf:  # also NaN, which no comparison excludes
                raise ValueError
            value = int(number) if key == "steps" else number
            if value <= 0:
                raise ValueError
        except ValueError:
            raise ConfigError(f"--budget {item!r}: write steps=N (training steps over all "
                              "runs, in total), hours=H (wall-clock, in total) or "
                              "finish_leaders=true|false, e.g. --budget steps=400000") from None
        out[key] = value
    return out


def cmd_status(args: argparse.Namespace) -> int:
    check_sweep_arg(args.sweep_dir)
    from gansweep.jobs.status import as_json, collect, format_status

    s = collect(args.sweep_dir)
    print(as_json(s) if args.json else format_status(s))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    for d in args.sweep_dirs:
        check_sweep_arg(d)
    from gansweep.jobs.sweep_dir import check_writable

    check_writable(Path(args.out).absolute(), "--out", min_free=20 * 2**20)  # pages, images
    from gansweep.jobs.report_cmd import report

    report(args.sweep_dirs, args.out)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    check_sweep_arg(args.sweep_dir)
    _at_least_1("--top", args.top)
    _at_least_1("--seeds", args.seeds)
    from gansweep.jobs.rerun import rerun

    rerun(args.sweep_dir, top=args.top, seeds=args.seeds, address=args.address,
          resume=args.resume)
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    check_sweep_arg(args.sweep_dir)
    from gansweep.jobs.tracking import track

    pending = track(args.sweep_dir)
    return 1 if any(pending.values()) else 0


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
    t.add_argument("--pick", default=None, metavar="RULE",
                   help="with --from on a two-objective sweep: the Pareto front point to "
                        "train, knee (the default) or best:METRIC (docs/pareto.md)")
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
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, dotted into mappings: --set steps=5000 "
                   "--set space.lr_g.high=1e-3 (repeatable; validated like the file and "
                   "recorded in the sweep's frozen spec)")
    s.set_defaults(func=cmd_submit)

    r = sub.add_parser("resume", help="continue an interrupted sweep, or extend a finished one")
    r.add_argument("sweep_dir")
    r.add_argument("--trials", type=int, default=None,
                   help="raise the number of configurations to N")
    r.add_argument("--budget", action="append", default=[],
                   metavar="steps=N|hours=H|finish_leaders=true",
                   help="raise the budget to this total (repeatable)")
    r.add_argument("--study", default=None, metavar="URL",
                   help="the study's database, when it moved: postgresql://USER@HOST:PORT/DB, "
                   "without a password (one in the URL is refused: a command line is visible "
                   "in `ps` and Ray's job table); the password comes from PGPASSWORD or "
                   "~/.pgpass (PGPASSFILE), as for psql")
    r.add_argument("--address", default=None, help=address_help)
    r.add_argument("--force", action="store_true",
                   help="take the sweep from a driver that still holds it (its host:pid is "
                   "named when resume is refused); only once you are sure it is dead")
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

    tk = sub.add_parser("track", help="log every run of a sweep to the trackers its spec names "
                        "(after a tracker was down); logs nothing twice")
    tk.add_argument("sweep_dir")
    tk.set_defaults(func=cmd_track)

    d = sub.add_parser("demo", help="run the demo sweeps on a local Ray and write the report")
    d.add_argument("--out", default="demo-output")
    d.add_argument("--address", default=None, help=address_help)
    d.set_defaults(func=cmd_demo)

    from gansweep.jobs.eval_cmd import add_parser as add_eval_parser  # `gansweep eval`

    add_eval_parser(sub)
    from gansweep.jobs.cluster_check import add_parser as add_cluster_parser  # `gansweep cluster`
    add_cluster_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Tune logs a trial's whole stack (Ray's frames first) for every failed trial; a failed
    # sweep says its first failure's own message instead, and each stack is kept in its
    # trial's error.txt. TUNE_PRINT_ALL_TRIAL_ERRORS=1 brings them back.
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"gansweep {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"gansweep {args.command}: {exc}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `gansweep status DIR | head`: the reader left; say nothing more (Python's own
        # flush at exit would otherwise print a second error), exit as a piped tool does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        durable = sys.modules.get("gansweep.analysis.durable")
        if durable is None or not isinstance(exc, durable.Unreadable):
            raise
        print(f"gansweep {args.command}: error: {exc}; nothing was changed. Check the "
              "storage (mount, bucket, permissions) and run the command again.",
              file=sys.stderr)
        return 1
    except Exception as exc:
        # Only a sweep has run by then, so its module is loaded; importing it here would
        # import Ray Tune for every command
        outcomes = sys.modules.get("gansweep.jobs.outcomes")
        if outcomes is None or not isinstance(exc, outcomes.SweepFailed):
            raise
        print(f"gansweep {args.command}: error: {exc}", file=sys.stderr)
        return 1


def command() -> None:
    """The `gansweep` command: main(), then an exit without the interpreter's teardown. Once
    a command has finished there is nothing left to do but free memory, and tearing down
    torch's, Ray's and pandas' modules object by object cost a sweep's driver 1.6 s of wall
    and 1.4 s of CPU after its last line (measured side by side on a tiny sweep). What the
    teardown would otherwise do first is done here: other threads are waited for and the
    exit handlers run (Ray's shutdown, logging's flush), then the output is flushed."""
    import atexit
    import threading

    try:
        code = main()
    except SystemExit as exc:  # argparse's own errors and --help
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that left (`| head`), or a closed stream
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    command()
