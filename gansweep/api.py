"""The Python API: what the `gansweep` command does, from a notebook or a script.

    import gansweep
    sweep = gansweep.submit("my_spec.yaml")          # or a dict, as the YAML would be
    sweep.configurations.head()                        # ranked, as configurations.csv
    sweep.best                                         # the configuration the sweep returns
    sweep.report("report/")
    gansweep.train(from_sweep=sweep.path, out="runs/best")

Each function runs the same code as its command and refuses the same bad input, raising
`gansweep.ConfigError` (a ValueError) with the command's message.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from gansweep.trainers.errors import ConfigError


class SweepResult:
    """A sweep directory, read: its runs and configurations as the report's CSVs have them,
    the configuration it returns, its status, and its report."""

    def __init__(self, path: str | Path):
        from gansweep.analysis.layout import sweep_path
        from gansweep.analysis.sweeps import load_sweep

        self.path = sweep_path(path)
        self.sweep = load_sweep(self.path)

    def reload(self) -> SweepResult:
        """Read the directory again (a sweep another process is running moves on)."""
        return SweepResult(self.path)

    @property
    def runs(self) -> pd.DataFrame:
        """One row per run, a configuration under one seed (trials.csv)."""
        from gansweep.analysis.sweeps import trials_table

        return trials_table([self.sweep])

    @property
    def configurations(self) -> pd.DataFrame:
        """One row per configuration over its seeds, ranked (configurations.csv)."""
        from gansweep.analysis.report import configurations_csv

        return configurations_csv([self.sweep])

    @property
    def best(self) -> dict | None:
        """The configuration the sweep returns (None until one has ended on its seeds):
        its hyperparameters, the seed-robust value and the seeds it was judged on. A
        two-objective sweep's is the knee of its Pareto front (`metric_2`, `value_2`: the
        second objective); `pick(rule)` chooses another point."""
        return self.pick()

    def pick(self, rule: str | None = None) -> dict | None:
        """The Pareto front point `rule` chooses (`knee`, `best:METRIC`), as `best` has it;
        the best configuration of a one-objective sweep (rule None)."""
        if rule is not None:
            from gansweep.jobs.train_cmd import pick_rule

            pick_rule(self.sweep, rule)
        row = self.sweep.pick(rule if rule is not None or not self.sweep.pareto else "knee")
        if row is None:
            return None
        out = {"key": row["key"], "config": dict(self.sweep.configs[row["key"]]),
               "metric": self.sweep.metric, "value": float(row["value"]),
               "std": None if math.isnan(row["std"]) else float(row["std"]),
               "seeds": list(row["seed_list"]),
               "judged_on_all_seeds": bool(row["judged_on_all_seeds"])}
        if self.sweep.pareto:
            out.update(metric_2=self.sweep.metric_2, value_2=float(row["value_2"]))
        return out

    @property
    def front(self) -> pd.DataFrame:
        """The Pareto front, one row per configuration (configurations.csv's columns), the
        knee first; a one-objective sweep's is its best configuration alone."""
        front = self.sweep.front()
        table = self.configurations
        return table[table["key"].isin(set(front["key"]))].reset_index(drop=True)

    def status(self) -> dict:
        """What `gansweep status --json` prints."""
        from gansweep.jobs.status import collect

        return collect(self.path)

    def report(self, out: str | Path) -> Path:
        """Write the comparison report (index.html, report.md, the CSVs); returns index.html."""
        from gansweep.jobs.report_cmd import report

        return report([str(self.path)], str(out), log=lambda *_: None)

    def __repr__(self) -> str:
        s = self.sweep
        best = self.best
        found = ("no configuration has ended yet" if best is None else
                 f"best {s.metric} {best['value']:.4g} over seeds {best['seeds']}")
        if best is not None and s.pareto:
            found = (f"Pareto front of {len(s.front())} configuration(s); knee {s.metric} "
                     f"{best['value']:.4g}, {s.metric_2} {best['value_2']:.4g}")
        return (f"<SweepResult {s.name}: {s.trainer} on {s.dataset_name}, {s.progress_line()}; "
                f"{found}; {self.path}>")

    def _repr_html_(self) -> str:
        head = html.escape(repr(self)[1:-1])
        table = self.configurations.head(5)
        return f"<p><b>{head}</b></p>" + (table.to_html(index=False) if len(table) else "")


def _spec(spec: Any, overrides: dict | None = None):
    from gansweep.jobs.spec import SweepSpec, apply_sets, load_spec, parse_spec

    if isinstance(spec, SweepSpec):
        if overrides:
            return parse_spec(apply_sets(spec.to_dict(), overrides))
        return spec
    if isinstance(spec, dict):
        return parse_spec(apply_sets(spec, overrides or {}))
    if isinstance(spec, (str, Path)):
        return load_spec(spec, sets=overrides or {})
    raise ConfigError(f"spec: give a path to a spec file, a mapping or a SweepSpec, not "
                      f"{type(spec).__name__}")


def submit(spec: Any, address: str | None = None, overrides: dict | None = None,
           log=print) -> SweepResult:
    """Start a sweep (`gansweep submit`): `spec` is a spec file's path or its mapping;
    `overrides` ({"steps": 5000, "space.lr_g.high": 1e-3}) are `--set`'s dotted keys.
    Returns when the sweep ends (or its budget is spent)."""
    from gansweep.jobs.submit import submit as run

    return SweepResult(run(_spec(spec, overrides), address=address, log=log))


def resume(path: str | Path, address: str | None = None, trials: int | None = None,
           budget: dict | None = None, force: bool = False, log=print) -> SweepResult:
    """Continue a sweep (`gansweep resume`), optionally to a larger total of `trials` or
    `budget` ({"steps": N} and/or {"hours": H})."""
    from gansweep.jobs.submit import resume as run

    return SweepResult(run(path, address=address, trials=trials, budget=budget, force=force,
                           log=log))


def track(path: str | Path, log=print) -> dict[str, int]:
    """Log every run of a sweep to the trackers its spec names (`gansweep track`), logging
    nothing twice. Returns the runs still pending per tracker (0: all logged)."""
    from gansweep.jobs.tracking import track as run

    return run(path, log=log)


def load(path: str | Path) -> SweepResult:
    """Read a sweep directory, finished, running or interrupted (`gansweep status`)."""
    return SweepResult(path)


def train(trainer: str | None = None, dataset: Any = None, *, out: str | Path,
          steps: int | None = None, config: dict | None = None, seed: int | None = None,
          from_sweep: str | Path | None = None, report_every: int | None = None,
          score_every: int | None = None, resume: bool = False, device: str | None = None,
          log=print, pick: str | None = None) -> pd.DataFrame:
    """Train one configuration (`gansweep train`): a trainer on a dataset, or (`from_sweep`)
    the configuration a sweep returns, on a seed it never used (`pick`: the point of a
    two-objective sweep's Pareto front, `knee` by default or `best:METRIC`). `config`
    overrides hyperparameters. Returns the run's reports, one row each (metrics.csv)."""
    from gansweep.jobs.train_cmd import run as run_train

    history = run_train(trainer=trainer, dataset=dataset, out=Path(out), steps=steps,
                        overrides=dict(config or {}), seed=seed, from_sweep=from_sweep,
                        report_every=report_every, score_every=score_every, resume=resume,
                        device=device, log=log, pick=pick)
    return pd.DataFrame(history)
