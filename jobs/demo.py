"""`make demo`: four small real sweeps (MLP GAN on ring8; DCGAN, WGAN-GP and SOM on digits)
on the embedded local Ray, their status, and the comparison report; a few minutes on 2 CPU
cores."""
from __future__ import annotations

from pathlib import Path

from gansweep.jobs.spec import parse_spec, read_yaml

SPECS = ("demo-gan-ring8.yaml", "demo-dcgan-digits.yaml", "demo-wgan-gp-digits.yaml",
         "demo-som-digits.yaml")


def demo_specs(out: Path):
    here = Path(__file__).parent / "specs"
    for name in SPECS:
        raw = read_yaml((here / name).read_text())
        raw["storage"] = str(out / "sweeps")
        yield parse_spec(raw, str(here / name))


def run_demo(out: Path, address: str | None = None, log=print) -> Path:
    from gansweep.analysis.report import write_report
    from gansweep.jobs.status import collect, format_status
    from gansweep.jobs.submit import resume, submit

    dirs = []
    for spec in demo_specs(out):
        root = Path(spec.sweep_dir)
        if root.exists():
            log(f"[gansweep] {root} exists: resuming it (a finished sweep returns at once)")
            resume(root, address=address, log=log)
        else:
            submit(spec, address=address, log=log)
        dirs.append(root)
    for root in dirs:
        log(format_status(collect(root)))
    page = write_report(dirs, out / "report")
    log("[gansweep] demo sweeps are in " + ", ".join(str(d) for d in dirs))
    log(f"[gansweep] report: {page} (also report.md and trials.csv beside it)")
    return page
