"""Comparison reports (`gansweep report`) from real tiny sweeps on a real local Ray, from a
half-finished sweep, from a seed rerun, and from synthetic sweeps of a few hundred
configurations (speed, and numbers known in advance)."""
from __future__ import annotations

import base64
import io
import json
import re
import time

import numpy as np
import pandas as pd
import pytest

from gansweep.analysis import importance
from gansweep.analysis.report import SECTIONS, UNFINISHED_LABEL, write_report
from gansweep.analysis.sweeps import load_sweep
from gansweep.trainers.errors import ConfigError
from tests.conftest import run_cli
from tests.report_helpers import fake_sweep, real_sweeps

IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def sweeps(ray_local, tmp_path_factory):
    return real_sweeps(tmp_path_factory)


@pytest.fixture(scope="module")
def report(sweeps, tmp_path_factory):
    """One report of the GAN and SOM sweeps (the SOM's rerun is picked up by itself)."""
    out = tmp_path_factory.mktemp("report")
    index = write_report([sweeps["gan"], sweeps["som"]], out)
    return out, index


def decoded_images(text: str):
    from PIL import Image

    out = []
    for data in IMG.findall(text):
        im = Image.open(io.BytesIO(base64.b64decode(data)))
        im.load()
        out.append(im)
    return out


def test_report_writes_the_three_files_with_every_section(report):
    out, index = report
    assert index == out / "index.html"
    html = index.read_text()
    md = (out / "report.md").read_text()
    for section in SECTIONS:
        assert f"## {section}\n" in md, section
        assert f">{section}</h2>" in html, section
    # self-contained: nothing fetched from anywhere
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<script" not in html and "<link" not in html
    # report.md points at the PNGs beside it
    for ref in re.findall(r"\]\((img/[^)]+\.png)\)", md):
        assert (out / ref).is_file()


def test_every_embedded_image_decodes(report):
    _, index = report
    images = decoded_images(index.read_text())
    # curves + samples for 3 sweeps, importance + scatter, best-so-far x2, families, seeds
    assert len(images) >= 10
    for im in images:
        assert im.format == "PNG" and im.width >= 200 and im.height >= 150
        assert len(set(np.asarray(im.convert("L")).ravel()[::97])) > 3  # not blank


def test_trials_csv_reads_back_one_row_per_configuration(report, sweeps):
    out, _ = report
    df = pd.read_csv(out / "trials.csv")
    stored = {p.parent.name for name in ("gan", "som", "rerun")
              for p in (sweeps[name] / "trials").glob("*/config.json")}
    assert set(df["key"]) == stored and len(df) == len(stored) == 5 + 3 + 4
    for col in ("sweep", "trainer", "state", "stop_step", "steps_planned", "time_s", "value",
                "objective", "seed", "hp_lr_g", "hp_lr_d", "hp_rows", "hp_cols",
                "final_fid", "best_fid", "final_quantization_error"):
        assert col in df.columns, col
    assert set(df["state"]) <= {"completed", "collapsed", "diverged", "asha", "failed"}
    gan = df[df["sweep"] == "gan-ring8"]
    assert gan["hp_lr_g"].notna().all() and (gan["steps_planned"] == 20).all()
    assert (gan["time_s"] > 0).all() and (gan["stop_step"] > 0).all()
    ranked = gan.dropna(subset=["rank"]).sort_values("rank")
    assert list(ranked["value"]) == sorted(ranked["value"])  # fid: lower first
    assert (gan["best_fid"] <= gan["final_fid"] + 1e-12).all()  # best over the curve


def test_leaderboard_keeps_every_configuration(report, sweeps):
    out, _ = report
    md = (out / "report.md").read_text()
    for name in ("gan", "som"):
        for key in (p.parent.name[:8] for p in (sweeps[name] / "trials").glob("*/result.json")):
            assert f"| {key} |" in md


def test_importance_from_the_optuna_study(report, sweeps):
    res = importance.compute(sweeps["gan"])
    assert res.ok, res.why
    assert res.n_used == 5 and abs(sum(res.importances.values()) - 1) < 1e-6
    assert "lr_g" in res.importances
    html = report[1].read_text()
    assert "5 of 5 complete trials used" in html
    som = importance.compute(sweeps["som"])
    assert not som.ok and "at least" in som.why  # 3 trials: said so, not crashed
    assert "importance skipped — only 3 complete trial(s)" in html


def test_family_comparison_of_gan_and_som(report):
    html = report[1].read_text()
    part = html.split(">Family comparison</h2>")[1].split("<h2")[0]
    assert "each family on its own objective" in part
    assert "gan-ring8" in part and "som-digits" in part
    assert "quantization_error (min)" in part
    assert "fid (gansweep evaluator features; not comparable to papers) (min)" in part
    assert len(decoded_images(part)) == 1


def test_rerun_trains_top_configurations_under_new_seeds(sweeps):
    som, rr = load_sweep(sweeps["som"]), load_sweep(sweeps["rerun"])
    assert rr.rerun["of"] == str(sweeps["som"].resolve()) and rr.rerun["seeds"] == [1, 2]
    top2 = [json.dumps(som.configs[k], sort_keys=True) for k in som.ranked()["key"][:2]]
    got = sorted((json.dumps(rr.configs[k], sort_keys=True), int(s))
                 for k, s in zip(rr.trials["key"], rr.trials["seed"]))
    assert got == sorted((c, s) for c in top2 for s in (1, 2))
    assert (rr.trials["state"] == "completed").all()


def test_report_ranks_reruns_by_mean_and_spread(report, sweeps):
    out, _ = report
    md = (out / "report.md").read_text()
    part = md.split("## Seed robustness")[1].split("\n## ")[0]
    assert "som-digits-rerun: top 2 of som-digits under seeds 1, 2" in part
    table = [ln for ln in part.splitlines() if ln.startswith("| ")]
    assert table[0].startswith("| rank by mean | config | sweep rank | sweep value | "
                               "mean quantization_error | std |")
    means = [float(r.split("|")[5]) for r in table[1:]]
    assert len(means) == 2 and means == sorted(means)
    assert "Under 2 new seeds the best by mean is config" in md


def test_a_second_rerun_is_refused_and_points_at_the_first(sweeps):
    from gansweep.jobs.rerun import rerun

    with pytest.raises(ConfigError, match="already exists.*gansweep report"):
        rerun(sweeps["som"], top=2, seeds=2, log=lambda *_: None)
    with pytest.raises(ConfigError, match="itself a seed rerun"):
        rerun(sweeps["rerun"], top=1, seeds=1, log=lambda *_: None)


def test_half_finished_sweep_is_reported_as_far_as_it_got(sweeps, tmp_path):
    index = write_report([sweeps["half"]], tmp_path)
    html = index.read_text()
    assert "NOT FINISHED (running or interrupted): 5 of 5 configurations ended, 1 unfinished" \
        in html
    assert UNFINISHED_LABEL in html and "last 10 of 20" in html
    df = pd.read_csv(tmp_path / "trials.csv")
    row = df[df["key"] == "0" * 16].iloc[0]
    assert row["state"] == "unfinished" and row["stop_step"] == 10 and np.isnan(row["rank"])
    for section in SECTIONS:
        assert f">{section}</h2>" in html
    assert "skipped — no rerun found" in html and "skipped — one sweep given" in html


def test_report_cli(sweeps, tmp_path, capsys):
    from gansweep.jobs.cli import main

    proc = run_cli("report", str(sweeps["gan"]), "--out", str(tmp_path / "r"))
    assert str((tmp_path / "r" / "index.html").resolve()) in proc.stdout
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a gansweep sweep directory" in capsys.readouterr().err
    assert main(["rerun", str(tmp_path), "--top", "1", "--seeds", "1"]) == 2
    assert "not a gansweep sweep directory" in capsys.readouterr().err


def test_what_ran_is_recorded_and_different_versions_are_warned(report, sweeps, tmp_path,
                                                                 capsys):
    import shutil

    import torch

    from gansweep.jobs.cli import main

    for name in ("gan", "rerun"):
        (run,) = load_sweep(sweeps[name]).driver_runs
        assert run.versions["torch"] == torch.__version__ and run.versions["python"]
        assert {"gansweep", "ray", "optuna"} <= set(run.versions)
        (node,) = run.nodes.values()  # one Ray node trained every run
        assert node["devices"] and node["torch"] == torch.__version__
    out, _ = report
    part = (out / "report.md").read_text().split("## What ran")[1]
    assert torch.__version__ in part and "different versions" not in part
    # the same sweep as if one driver run had used another torch: the report says so
    other = tmp_path / "other"
    shutil.copytree(sweeps["gan"], other)
    meta = json.loads((other / "sweep.json").read_text())
    meta["runs"][0]["versions"]["torch"] = "2.12.0"
    (other / "sweep.json").write_text(json.dumps(meta))
    assert main(["report", str(sweeps["gan"]), str(other), "--out", str(tmp_path / "r")]) == 0
    said = capsys.readouterr().out
    assert f"ran under different versions: torch: 2.12.0 (other) / {torch.__version__} " \
        "(gan-ring8, other)" in said, said
    assert "different versions: torch: 2.12.0" in (tmp_path / "r" / "report.md").read_text()


# ---- synthetic sweeps: a few hundred configurations, known outcomes ------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return fake_sweep(root / "gan-300", 300)


def test_a_few_hundred_trials_take_seconds(big, tmp_path):
    load_sweep(big)  # warm imports (pandas, yaml) so the timing is the report's own work
    t0, c0 = time.perf_counter(), time.process_time()
    index = write_report([big], tmp_path)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"report of 300 configurations: {wall:.1f} s wall, {cpu:.1f} s CPU")
    assert cpu < 30, (wall, cpu)
    df = pd.read_csv(tmp_path / "trials.csv")
    assert len(df) == 300
    html = index.read_text()
    assert len(decoded_images(html)) >= 5


def test_numbers_of_a_synthetic_sweep(big):
    from gansweep.analysis.report import best_so_far_series, curve_picks, early_stop_row

    s = load_sweep(big)
    t = s.trials
    stopped = t[t["state"] == "collapsed"]
    assert len(stopped) > 5
    row = early_stop_row(s)
    saved = float((1000 - stopped["stop_step"]).sum())
    assert float(row["steps saved"]) == pytest.approx(saved, rel=1e-3)
    assert float(row["saved %"]) == pytest.approx(100 * saved / (300 * 1000), rel=1e-3)
    ser = best_so_far_series(s)
    best = [b for b in ser["best"] if np.isfinite(b)]
    assert best == sorted(best) and best[-1] == t["value"].max()  # modes_captured: max
    assert ser["compute"][-1] == pytest.approx(t["time_s"].sum())
    picks, _ = curve_picks(s)
    assert sum(p["stopped"] for p in picks) == 3 and len(picks) == 8
    from gansweep.jobs.rerun import top_configs

    top = top_configs(big, 3)  # by the metric as measured, never the penalised objective
    assert [p["value"] for p in top] == sorted(t["value"], reverse=True)[:3]
    assert [p["rank"] for p in top] == [1, 2, 3] and all(p["config"]["lr_d"] for p in top)
    res = importance.compute(big)
    assert res.ok and res.n_used == 300 - len(stopped)
    assert max(res.importances, key=res.importances.get) == "lr_d"  # how the data was made


def test_families_on_one_dataset_compare_on_shared_metrics(tmp_path):
    a = fake_sweep(tmp_path / "dcgan-digits", 12, trainer="dcgan", dataset="digits",
                   metric="fid", seed=1, with_study=False)
    b = fake_sweep(tmp_path / "wgan-gp-digits", 12, trainer="wgan-gp", dataset="digits",
                   metric="fid", seed=2, with_study=False)
    som = fake_sweep(tmp_path / "som-digits", 6, trainer="som", dataset="digits",
                     metric="quantization_error", seed=3, with_study=False)
    index = write_report([a, b, som], tmp_path / "out")
    md = (tmp_path / "out" / "report.md").read_text()
    part = md.split("## Family comparison")[1].split("\n## ")[0]
    assert "### On digits: dcgan-digits (dcgan), wgan-gp-digits (wgan-gp)" in part
    rows = {ln.split("|")[1].strip(): ln for ln in part.splitlines()
            if ln.startswith(("| dcgan", "| wgan-gp"))
            and "| fid (gansweep evaluator features; not comparable to papers) (min) |" in ln}
    for fam, root in (("dcgan", a), ("wgan-gp", b)):
        t = load_sweep(root).trials
        vals = t[t["state"] != "unfinished"]["value"]
        cells = [c.strip() for c in rows[fam].split("|")]
        assert float(cells[6]) == pytest.approx(vals.min(), rel=1e-3)  # best fid (min)
        assert float(cells[7]) == pytest.approx(vals.median(), rel=1e-3)
    # both time their runs (train_seconds, steps_per_second in every report), which must not
    # group the SOM with the GANs: `make demo`'s report divided by zero panels when it did
    assert "som-digits (som) measured no metric in common with the other sweeps" in part
    assert "| som | som-digits | digits | quantization_error (min) | 6 |" in part
    assert "no Optuna study" in index.read_text()  # with_study=False: said so, not crashed
