"""`gansweep report SWEEP_DIR [SWEEP_DIR ...] --out DIR`: the comparison report
(analysis/report.py) of finished, running or interrupted sweeps; a sweep's seed rerun
(SWEEP_DIR-rerun) is picked up without being named."""
from __future__ import annotations

from pathlib import Path

from gansweep.trainers.errors import ConfigError


def report(sweep_dirs: list[str], out: str, log=print) -> Path:
    from gansweep.analysis.report import write_report
    from gansweep.analysis.sweeps import is_sweep_dir

    for d in sweep_dirs:
        try:
            found = is_sweep_dir(d)
        except OSError as exc:  # a bucket this machine cannot reach
            raise ConfigError(f"{d} cannot be read ({exc}); check the storage credentials "
                              "and endpoint in this machine's environment") from None
        if not found:
            raise ConfigError(f"{d} is not a gansweep sweep directory (no spec.yaml / "
                              "sweep.json); give directories `gansweep submit` created, "
                              "e.g. demo-output/sweeps/demo-gan-ring8")
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out}: a file of that name exists; give a directory")
    index = write_report(list(sweep_dirs), out_dir, warn=log)
    log(f"[gansweep] report written: {index.resolve()}")
    return index
