"""`gansweep report`: one or more sweep directories into a comparison report.

    OUT/index.html   one self-contained page (every figure embedded as a data: URI; no network)
    OUT/report.md    the same content in Markdown, figures from OUT/img/
    OUT/trials.csv   one row per run (a configuration under one seed): hyperparameters
                     (hp_*), final_* and best_* metrics, stop reason (state), steps,
                     training seconds (time_s)
    OUT/configurations.csv  one row per configuration over its seeds: rank, the robust value
                     and spread, per-seed values, how its runs ended
    OUT/img/*.png    the figures

It answers which configuration is best and how sure we are, which hyperparameters matter, how
the runs behaved, what the models generated, and how the families compare; it reads files
only, so a running or interrupted sweep is reported as far as it got (and says so), and a
section a sweep cannot fill says why in one line.
"""
from __future__ import annotations

import base64
import html
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gansweep.analysis import features, layout, plots, ranking
from gansweep.analysis import importance as imp_mod
from gansweep.analysis.layout import ENDED, STOPPED_EARLY, UNFINISHED
from gansweep.analysis.records import version_differences
from gansweep.analysis.sweeps import (
    Sweep,
    budget_events,
    load_sweep,
    load_sweeps,
    rerun_summary,
    trials_table,
)
from gansweep.analysis.vocabulary import COST_METRICS, DIRECTIONS

TOP_CURVES, COLLAPSED_CURVES, TOP_SAMPLES, MAX_SCATTER = 5, 3, 4, 4
# Columns shown beside the objective, per OUTPUT kind.
QUALITY = {"samples": ("modes_captured", "hq_fraction", "reverse_kl", "fid", "precision",
                       "recall", "density", "coverage", "mode_diversity"),
           "weights": ("quantization_error", "topographic_error", "unit_utilization")}
SECTIONS = ("Sweeps", "Leaderboard", "Training curves", "Samples", "Hyperparameter importance",
            "Best objective so far", "Compute saved by early stopping", "Family comparison",
            "Seed robustness", "What ran")
UNFINISHED_LABEL = "unfinished (running or interrupted)"


# ---- a page: blocks rendered to HTML and to Markdown ------------------------------------------

@dataclass
class Page:
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def note(self, text: str) -> None:
        """A line saying what is missing or skipped, and why."""
        self.blocks.append(("note", text))

    def warn(self, text: str) -> None:
        self.blocks.append(("warn", text))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", path, alt))

    # -- rendering --
    def html(self, title: str) -> str:
        body = []
        toc = "".join(f'<li><a href="#{_anchor(s)}">{html.escape(s)}</a></li>' for s in SECTIONS)
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                tag = f"h{b[1]}"
                anchor = f' id="{_anchor(b[2])}"' if b[1] == 2 else ""
                body.append(f"<{tag}{anchor}>{html.escape(b[2])}</{tag}>")
                if b[1] == 1:
                    body.append(f'<nav><b>Sections:</b><ul>{toc}</ul></nav>')
            elif kind == "p":
                body.append(f"<p>{html.escape(b[1])}</p>")
            elif kind == "note":
                body.append(f'<p class="note">{html.escape(b[1])}</p>')
            elif kind == "warn":
                body.append(f'<p class="warn">{html.escape(b[1])}</p>')
            elif kind == "table":
                df = b[1]
                cls = ' class="scroll"' if len(df) > 25 else ""
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
                rows = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
                               + "</tr>" for r in df.itertuples(index=False))
                body.append(f"<div{cls}><table><thead><tr>{head}</tr></thead>"
                            f"<tbody>{rows}</tbody></table></div>")
            elif kind == "img":
                data = base64.b64encode(b[1].read_bytes()).decode()
                body.append(f'<figure><img src="data:image/png;base64,{data}" '
                            f'alt="{html.escape(b[2])}"><figcaption>{html.escape(b[2])}'
                            "</figcaption></figure>")
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
                + "\n".join(body) + "\n</body></html>\n")

    def markdown(self, out: Path) -> str:
        lines = []
        for b in self.blocks:
            kind = b[0]
            if kind == "h":
                lines += ["#" * b[1] + " " + b[2], ""]
            elif kind == "p":
                lines += [b[1], ""]
            elif kind == "note":
                lines += ["> " + b[1], ""]
            elif kind == "warn":
                lines += ["> **" + b[1] + "**", ""]
            elif kind == "table":
                df = b[1]
                lines.append("| " + " | ".join(_md_cell(c) for c in df.columns) + " |")
                lines.append("|" + "---|" * len(df.columns))
                lines += ["| " + " | ".join(_md_cell(v) for v in r) + " |"
                          for r in df.itertuples(index=False)]
                lines.append("")
            elif kind == "img":
                lines += [f"![{b[2]}]({b[1].relative_to(out).as_posix()})", ""]
        return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1300px;padding:0 16px;color:#222;line-height:1.4}
h1{border-bottom:2px solid #333}h2{border-bottom:1px solid #aaa;margin-top:2em}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;position:sticky;top:0}tr:nth-child(even) td{background:#fafafa}
div.scroll{max-height:520px;overflow:auto;border:1px solid #ddd}
div{overflow-x:auto}
img{max-width:100%;height:auto}figure{margin:10px 0}
figcaption{font-size:12px;color:#555}
p.note{color:#555;font-style:italic;border-left:3px solid #bbb;padding-left:8px}
p.warn{background:#fff3cd;border:1px solid #e0c060;padding:6px 10px;font-weight:bold}
nav ul{columns:3;font-size:13px}
"""


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _anchor(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == int(v) and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.4g}"
    return str(v)


def _short(key: Any) -> str:
    return str(key)[:8]


# ---- the report ------------------------------------------------------------------------------

def write_report(sweep_dirs: list[Path], out: Path, warn=None) -> Path:
    """Write OUT/index.html, OUT/report.md, OUT/trials.csv (and OUT/img/) for the sweeps;
    rerun siblings (SWEEP_DIR-rerun) are picked up. Returns the path of index.html. `warn`
    (a print-like callable) is told what a reader must know before comparing the sweeps:
    that they ran under different versions."""
    t0 = time.perf_counter()
    out = Path(out)
    sweeps = load_sweeps([layout.sweep_path(d) for d in sweep_dirs])
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    for old in img.glob("*.png"):  # figures of an earlier report into the same directory
        old.unlink()
    ctx = _Context(out=out, img=img, sweeps=sweeps)
    page = Page()
    page.h(1, "gansweep report: " + ", ".join(s.name for s in sweeps))
    page.p(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from "
           f"{sum(len(s.trials) for s in sweeps)} configurations in {len(sweeps)} sweep "
           f"director{'y' if len(sweeps) == 1 else 'ies'}. Each configuration appears once, "
           "whichever Ray trial ids it ran under. 'value' is the sweep's metric as measured; "
           "'objective' is what the searcher saw (a deliberate worst value for collapsed or "
           "diverged runs).")
    timings = {"loading": time.perf_counter() - t0}
    for section in (_sweeps_section, _leaderboard_section, _pareto_section, _curves_section,
                    _samples_section,
                    _importance_section, _best_so_far_section, _early_stop_section,
                    _family_section, _seed_section, _what_ran_section):
        t1 = time.perf_counter()
        section(page, ctx)
        timings[section.__name__.strip("_").replace("_section", "")] = time.perf_counter() - t1
    if warn is not None:
        for line in version_differences({s.name: s.driver_runs for s in sweeps}):
            warn(f"[gansweep] warning: the sweeps compared ran under different versions: "
                 f"{line}")
    table = trials_table(sweeps)
    table.to_csv(out / "trials.csv", index=False)
    configurations_csv(sweeps).to_csv(out / "configurations.csv", index=False)
    page.h(2, "Files")
    page.p("trials.csv: one row per run, a configuration under one seed (hyperparameters as "
           "hp_*, final_* and best_* metrics, state = stop reason, stop_step, steps_planned, "
           "time_s = training seconds); configurations.csv: one row per configuration over "
           "its seeds (rank, value = the seeds statistic, std, per-seed values); report.md: "
           "this page in Markdown with the figures in img/.")
    page.p(f"Built in {time.perf_counter() - t0:.1f} s ("
           + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items() if v >= 0.05) + ").")
    title = "gansweep report: " + ", ".join(s.name for s in sweeps)
    (out / "report.md").write_text(page.markdown(out))
    index = out / "index.html"
    index.write_text(page.html(title))
    return index


@dataclass
class _Context:
    out: Path
    img: Path
    sweeps: list[Sweep]
    _data: dict = field(default_factory=dict)

    @property
    def searches(self) -> list[Sweep]:
        """The sweeps proper (reruns are a seed study of a sweep, not a search)."""
        return [s for s in self.sweeps if not s.is_rerun]

    def png(self, name: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        return self.img / f"{safe}.png"

    def real(self, s: Sweep, image_size: Any = None):
        """The dataset's held-out split (what the metrics score against), or a reason."""
        import json

        key = (json.dumps(s.dataset, sort_keys=True, default=str), image_size)
        if key not in self._data:
            try:
                from gansweep.trainers.data import load_dataset, mixtures

                size = None if image_size is None or _nan(image_size) else int(image_size)
                if isinstance(s.dataset, str) and s.dataset in mixtures.SOURCES:
                    self._data[key] = mixtures.SOURCES[s.dataset]()  # no torch import
                else:
                    self._data[key] = load_dataset(s.dataset, image_size=size)
            except Exception as exc:  # noqa: BLE001 - offline-only source, missing file
                self._data[key] = f"the real data could not be loaded ({exc})"
        return self._data[key]


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def _sweeps_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Sweeps")
    rows = []
    for s in ctx.sweeps:
        c = s.trials["state"].value_counts().to_dict() if len(s.trials) else {}
        ends = ", ".join(f"{c[k]} {k}" for k in ENDED if c.get(k))
        rows.append({"sweep": s.name, "trainer": s.trainer, "dataset": s.dataset_name,
                     "metric": " and ".join(f"{m} ({d})" for m, d in zip(s.metrics, s.modes)),
                     "fid in": features.space(s.features) if s.kind == "samples" else "-",
                     "configurations": f"{s.n_configurations_ended} ended of {s.planned}",
                     "runs ended as": ends or "-", "unfinished": s.n_unfinished,
                     "budget": s.budget_line() or "-",
                     "status": "finished" if s.finished else "NOT FINISHED",
                     "kind": "seed rerun of " + Path(s.rerun["of"]).name if s.is_rerun
                     else "search", "directory": str(s.root)})
    page.table(pd.DataFrame(rows))
    for s in ctx.sweeps:
        if not s.finished:
            page.warn(f"{s.name}: {s.progress_line()}")
        for n in s.notes:
            page.note(f"{s.name}: {n}")


# ---- leaderboard ---------------------------------------------------------------------------

def _quality_cols(s: Sweep) -> list[str]:
    names = QUALITY[s.kind]
    return [m for m in names if m != s.metric and f"final_{m}" in s.trials.columns
            and s.trials[f"final_{m}"].notna().any()]


def _varying_hp(s: Sweep) -> tuple[list[str], dict]:
    varying, fixed = [], {}
    for c in s.hp_columns():
        vals = s.trials[c].dropna().astype(str).unique()
        if len(vals) > 1:
            varying.append(c)
        elif len(vals) == 1:
            fixed[c[3:]] = s.trials[c].dropna().iloc[0]
    return varying, fixed


def _state_text(state: str) -> str:
    return UNFINISHED_LABEL if state == UNFINISHED else state


def leaderboard(s: Sweep) -> pd.DataFrame:
    t = s.trials
    varying, _ = _varying_hp(s)
    rows = []
    for r in t.to_dict("records"):
        unfinished = r["state"] == UNFINISHED
        row = {"rank": fmt(r.get("rank")), "config": _short(r["key"]),
               "state": _state_text(r["state"]),
               "step": (f"last {fmt(r['stop_step'])} of {fmt(r['steps_planned'])}" if unfinished
                        else f"{fmt(r['stop_step'])} of {fmt(r['steps_planned'])}"),
               s.metric: fmt(r.get("value")), "objective": fmt(r.get("objective"))}
        for m in _quality_cols(s):
            row[m] = fmt(r.get(f"final_{m}"))
        row["time_s"] = fmt(r.get("time_s"))
        if s.rerun is not None:
            row["seed"] = fmt(r.get("seed"))
        for c in varying:
            row[c[3:]] = fmt(r.get(c))
        rows.append(row)
    return pd.DataFrame(rows)


def configurations_csv(sweeps: list[Sweep]) -> pd.DataFrame:
    """One row per configuration of every sweep, over its seeds (configurations.csv)."""
    frames = []
    for s in sweeps:
        c = s.configurations.copy()
        if not len(c):
            continue
        for col, value in (("metric", s.metric), ("dataset", s.dataset_name),
                           ("trainer", s.trainer), ("sweep", s.name)):
            c.insert(0, col, value)
        if s.pareto:  # two objectives: value_2, objective_2 and front (non-dominated rank)
            c.insert(c.columns.get_loc("metric") + 1, "metric_2", s.metric_2)
        c["statistic"] = s.seeds["statistic"]
        frames.append(c)
    return pd.concat(frames, ignore_index=True, sort=False) if frames else pd.DataFrame()


MAX_ROWS = 200  # a page of ten thousand rows helps no one; the CSV files hold them all


def _capped(page: Page, table: pd.DataFrame, where: str) -> pd.DataFrame:
    if len(table) <= MAX_ROWS:
        return table
    page.note(f"the first {MAX_ROWS} of {len(table)} rows (the best ranked); all of them are "
              f"in {where}")
    return table.head(MAX_ROWS)


def configuration_board(s: Sweep) -> pd.DataFrame:
    """Configurations over their seeds: what the sweep ranks and returns."""
    varying, _ = _varying_hp(s)
    rows = []
    for r in s.configurations.to_dict("records"):
        row = {"rank": fmt(r.get("rank")), "config": _short(r["key"]),
               "seeds": f"{r['seeds']} of {s.seeds['count']}",
               f"{s.seeds['statistic']} {s.metric}": fmt(r["value"]), "std": fmt(r["std"]),
               "per seed": ", ".join(fmt(v) for v in r["values"]),
               "state": _state_text(r["state"]), "objective told": fmt(r["objective"])}
        if s.pareto:
            row = {"rank": row.pop("rank"), "front": fmt(r.get("front")), **row,
                   f"{s.seeds['statistic']} {s.metric_2}": fmt(r["value_2"])}
        for c in varying:
            row[c[3:]] = fmt(r.get(c))
        rows.append(row)
    return pd.DataFrame(rows)


def _leaderboard_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Leaderboard")
    page.p("Configurations first, ranked by their seed-robust value (the sweep's `seeds` "
           "statistic over the seeds each ran): those judged on every seed, then those judged "
           "on fewer; a configuration with a stopped run (collapsed, diverged, ASHA, failed) is "
           "never ranked and comes below, as do unfinished ones. Then every run, failed and "
           "stopped ones included: completed runs ranked by the metric as measured, the others "
           "after them without a rank.")
    searches = ctx.searches
    if len(searches) > 1:
        page.h(3, "Across sweeps: the best configuration of each")
        rows = []
        for s in searches:
            conf = s.best_configuration()
            row = {"sweep": s.name, "trainer": s.trainer, "dataset": s.dataset_name,
                   "metric": f"{_metric_name(s, s.metric)} ({s.mode})"}
            if conf is not None:
                row.update({"best value": fmt(conf["value"]), "± std": fmt(conf["std"]),
                            "seeds": f"{conf['seeds']} of {s.seeds['count']}",
                            "config": _short(conf["key"]), "state": conf["state"]})
            else:
                row["best value"] = "none completed yet"
            row["configurations"] = f"{s.n_configurations_ended}/{s.planned}"
            row["stopped early"] = int(s.trials["state"].isin(STOPPED_EARLY).sum())
            row["failed"] = int((s.trials["state"] == layout.FAILED).sum())
            rows.append(row)
        page.table(pd.DataFrame(rows).fillna(""))
        page.note("Different metrics (or datasets) are not comparable numbers; the Family "
                  "comparison section compares sweeps that share a dataset.")
    for s in ctx.sweeps:
        page.h(3, f"{s.label} on {s.dataset_name}" + (" — seed rerun" if s.is_rerun else ""))
        if not s.finished:
            page.warn(s.progress_line())
        if not len(s.trials):
            page.note("no configuration has started writing results yet")
            continue
        _, fixed = _varying_hp(s)
        if fixed:
            page.p("Same in every configuration: "
                   + ", ".join(f"{k}={fmt(v)}" for k, v in sorted(fixed.items())))
        page.p(_how_sure(s, ctx))
        if s.seeds["count"] > 1 and len(s.configurations):
            page.table(_capped(page, configuration_board(s), "configurations.csv"))
            page.p("Every run:")
        page.table(_capped(page, leaderboard(s), "trials.csv"))


def _pareto_section(page: Page, ctx: _Context) -> None:
    """Two objectives: every ranked configuration against both, the front highlighted, and a
    table of the front (nothing for a report without a two-objective sweep)."""
    sweeps = [s for s in ctx.searches if s.pareto]
    if not sweeps:
        return
    page.h(2, "Pareto front")
    page.p("A sweep with two objectives (quality against cost) returns a front, not one best: "
           "a configuration is on it when no other configuration is at least as good in both "
           "objectives and better in one (values: the seeds statistic of each; configurations "
           "judged on every seed are ranked before those judged on fewer, so front 0 is the "
           "front of those judged on every seed while there are any). The knee, the front "
           "point closest to the ideal point once each objective is scaled to [0, 1] over the "
           "front, is what `gansweep train --from` trains by default; `--pick best:METRIC` "
           "takes the front point best in one objective.")
    for s in sweeps:
        page.h(3, s.label)
        r = s.ranked_configurations()
        if not len(r):
            page.note("no configuration has completed on both objectives yet")
            continue
        on = (r["front"] == 0).to_numpy()
        pts = np.column_stack([r["value"].astype(float), r["value_2"].astype(float)])
        path = plots.pareto_front(f"{s.name}: {s.metric} against {s.metric_2}",
                                  (s.metric, s.metric_2), pts, on, ctx.png(f"pareto_{s.name}"),
                                  fewer=~r["judged_on_all_seeds"].to_numpy(bool))
        page.image(path, f"{s.name}: Pareto front of {s.metric} and {s.metric_2}")
        knee = s.pick("knee")
        front = r[r["front"] == 0].copy()
        front["_k"] = ranking.keys(front["value"], s.modes[0])
        rows = []
        for x in front.sort_values(["_k", "config_key"]).to_dict("records"):
            rows.append({"config": _short(x["key"]),
                         f"{s.metric} ({s.modes[0]})": fmt(x["value"]),
                         f"{s.metric_2} ({s.modes[1]})": fmt(x["value_2"]),
                         "seeds": f"{x['seeds']} of {s.seeds['count']}",
                         "knee": "yes" if knee and x["key"] == knee["key"] else "",
                         **{c[3:]: fmt(x.get(c)) for c in _varying_hp(s)[0]}})
        page.table(pd.DataFrame(rows))


def _how_sure(s: Sweep, ctx: _Context) -> str:
    r = s.ranked_configurations()
    if not len(r):
        return f"No configuration has completed with a finite {s.metric} yet."
    b = r.iloc[0]
    spread = "" if _nan(b["std"]) else f" ± {fmt(b['std'])}"
    text = (f"Best {s.metric}: {fmt(b['value'])}{spread} over {b['seeds']} seed(s) "
            f"(config {_short(b['key'])}).")
    if len(r) > 1:
        gap = abs(float(r.iloc[1]["value"]) - float(b["value"]))
        text += f" Runner-up {fmt(r.iloc[1]['value'])} (gap {fmt(gap)})."
    if s.is_rerun:
        return text
    if b["judged_on_all_seeds"] and s.seeds["count"] > 1:
        return text + (f" Each was judged on the same {s.seeds['count']} seeds by the "
                       f"{s.seeds['statistic']}; `gansweep rerun {s.root} --top K --seeds S` "
                       "trains the top ones on seeds the sweep never used.")
    rerun = next((x for x in ctx.sweeps if x.is_rerun
                  and layout.sweep_path(x.rerun["of"]).resolve() == s.root.resolve()), None)
    if rerun is None:
        text += (" Each configuration ran under one seed, so this ranking may reward a lucky "
                 f"seed: `gansweep rerun {s.root} --top K --seeds S` measures the spread.")
    else:
        summ = rerun_summary(rerun, s)
        if len(summ) and np.isfinite(summ.iloc[0]["mean"]):
            top = summ.iloc[0]
            text += (f" Under {len(rerun.rerun.get('seeds', []))} new seeds the best by mean is "
                     f"config {top['config']} (sweep rank {fmt(top['sweep_rank'])}): "
                     f"{fmt(top['mean'])} ± {fmt(top['std'])} (see Seed robustness).")
    return text


# ---- curves --------------------------------------------------------------------------------

def curve_picks(s: Sweep) -> tuple[list[dict], str]:
    """The top configurations and up to three typical collapsed ones (those whose stop step
    is nearest the median stop step of the collapsed)."""
    t = s.trials
    if not len(t):
        return [], ""
    ranked = s.ranked()
    top = ranked.head(TOP_CURVES)
    note = ""
    if len(top) < TOP_CURVES:  # a running sweep: fill up with unfinished runs, so far
        unf = t[t["state"] == UNFINISHED].sort_values(
            "value", key=lambda v: pd.Series(ranking.keys(v, s.mode), index=v.index))
        if len(unf):
            top = pd.concat([top, unf.head(TOP_CURVES - len(top))])
            note = ("no configuration has ended: the curves are of unfinished ones, so far"
                    if not len(ranked) else "unfinished configurations shown as far as they "
                    "got")
    coll = t[(t["state"] == layout.COLLAPSED) & ~t["key"].isin(top["key"])]
    if len(coll):
        med = coll["stop_step"].median()
        coll = coll.assign(_d=(coll["stop_step"] - med).abs()).sort_values(["_d", "key"])
        coll = coll.head(COLLAPSED_CURVES)
    elif not (t["state"] == layout.COLLAPSED).any():
        note = (note + "; " if note else "") + "no configuration collapsed"
    picks = []
    for r in top.to_dict("records"):
        picks.append({"curve": s.curves.get(r["key"], pd.DataFrame()), "stopped": False,
                      "label": _pick_label(r)})
    for r in coll.to_dict("records"):
        picks.append({"curve": s.curves.get(r["key"], pd.DataFrame()), "stopped": True,
                      "label": _pick_label(r)})
    return [p for p in picks if len(p["curve"])], note


def _pick_label(r: dict) -> str:
    rank = f"#{fmt(r['rank'])} " if not _nan(r.get("rank")) else ""
    if r["state"] == UNFINISHED:
        return f"{rank}{_short(r['key'])} unfinished, last step {fmt(r['stop_step'])}"
    return f"{rank}{_short(r['key'])} {r['state']} at step {fmt(r['stop_step'])}"


def _curves_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Training curves")
    page.p(f"The top {TOP_CURVES} configurations (solid) and up to {COLLAPSED_CURVES} typical "
           "collapsed ones (dashed), each line ending where its run stopped. GANs: generator "
           "and discriminator (critic, for the WGANs) losses and mode diversity; SOMs: "
           "quantization and topographic error and unit utilization.")
    for s in ctx.sweeps:
        page.h(3, s.label)
        picks, note = curve_picks(s)
        if note:
            page.note(f"{s.name}: {note}")
        if not picks:
            page.note(f"{s.name}: skipped — no configuration has reported a metrics row yet")
            continue
        path = plots.curves(f"{s.label} on {s.dataset_name}", s.kind, s.trainer, picks,
                            ctx.png(f"curves-{s.name}"))
        page.image(path, f"{s.name}: training curves of the top and typical collapsed runs")


# ---- samples -------------------------------------------------------------------------------

def _samples_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Samples")
    page.p(f"The top {TOP_SAMPLES} configurations' outputs at the end of their runs. GANs: "
           "samples.npy, drawn from a fixed latent batch (the generator's noise seed is 0 for "
           "every configuration); images as images, 2-D samples over the held-out real data, "
           "1-D as a histogram over the real density. SOMs: the weight map and its U-matrix.")
    for s in ctx.sweeps:
        page.h(3, s.label)
        ranked = s.ranked()
        fname = layout.output_file(s.kind)
        # lazily: in a bucket every look is a request, and only the top few are shown
        rows = list(itertools.islice((r for r in ranked.to_dict("records")
                                      if s.output_path(r["key"]).is_file()), TOP_SAMPLES))
        if not rows:
            why = ("no configuration has ended yet" if not len(ranked) else
                   f"no ranked configuration has {fname} (diverged runs write none)")
            page.note(f"{s.name}: skipped — {why}")
            continue
        try:
            if s.kind == "weights":
                _som_panels(page, ctx, s, rows)
            else:
                _sample_panels(page, ctx, s, rows)
        except (OSError, ValueError) as exc:
            page.note(f"{s.name}: skipped — the saved arrays could not be read ({exc})")


def _sample_panels(page: Page, ctx: _Context, s: Sweep, rows: list[dict]) -> None:
    panels = []
    for r in rows:
        x = layout.load_array(s.output_path(r["key"]))
        panels.append({"samples": x, "label": f"#{fmt(r['rank'])} {_short(r['key'])}: "
                       f"{s.metric} {fmt(r['value'])}"})
    kind = "image" if panels[0]["samples"].ndim >= 3 else "vector"
    real = None
    if kind == "vector":
        data = ctx.real(s)
        if isinstance(data, str):
            page.note(f"{s.name}: samples drawn without the real data — {data}")
        else:
            real = data.held_out
    path = plots.samples(f"{s.label}: samples of the top configurations", panels, real, kind,
                         ctx.png(f"samples-{s.name}"))
    page.image(path, f"{s.name}: samples of the top {len(panels)} configurations")


def _som_panels(page: Page, ctx: _Context, s: Sweep, rows: list[dict]) -> None:
    panels = []
    for r in rows:
        w = layout.load_array(s.output_path(r["key"]))
        panels.append({"weights": w, "label": f"#{fmt(r['rank'])} {_short(r['key'])} "
                       f"({w.shape[0]}x{w.shape[1]}): {s.metric} {fmt(r['value'])}"})
    data = ctx.real(s)
    real, kind, shape = None, "vector", None
    if isinstance(data, str):
        page.note(f"{s.name}: weight maps drawn without the real data — {data}")
        dim = int(np.prod(panels[0]["weights"].shape[2:]))
        side = round(math.sqrt(dim))
        if dim > 3 and side * side == dim:
            kind, shape = "image", (1, side, side)
    else:
        real, kind, shape = data.held_out, data.kind, data.shape
    path = plots.som_maps(f"{s.label}: weight maps and U-matrices of the top configurations",
                          panels, real, kind, shape, ctx.png(f"som-{s.name}"))
    page.image(path, f"{s.name}: weight maps and U-matrices of the top {len(panels)} maps")


# ---- hyperparameters -----------------------------------------------------------------------

def _importance_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Hyperparameter importance")
    page.p("fANOVA (Optuna's FanovaImportanceEvaluator) on each sweep's Optuna study, over its "
           "complete trials with a finite objective (collapsed and diverged runs report a "
           "penalty, not a measurement, and are left out); then the metric against the value "
           "of each important parameter, one point per configuration.")
    if not ctx.searches:
        page.note("skipped — only seed reruns were given; they have no Optuna study")
    for s in ctx.searches:
        page.h(3, s.label)
        res = imp_mod.compute(s.root)
        if res.ok:
            page.p(f"{res.n_used} of {res.n_complete} complete trials used"
                   + (f" ({res.why})" if res.why else "") + ".")
            path = plots.importance(f"{s.label}: hyperparameter importance (fANOVA)",
                                    res.importances, ctx.png(f"importance-{s.name}"))
            page.image(path, f"{s.name}: fANOVA importance of the searched hyperparameters")
            page.table(pd.DataFrame([{"hyperparameter": k, "importance": fmt(v)} for k, v in
                                     sorted(res.importances.items(), key=lambda kv: -kv[1])]))
            ordered = sorted(res.importances, key=lambda k: -res.importances[k])
            params = [p for p in ordered if res.importances[p] >= 0.05][:MAX_SCATTER] \
                or ordered[:1]
            log_params = res.log_params
        else:
            page.note(f"{s.name}: importance skipped — {res.why}")
            varying, _ = _varying_hp(s)
            params = [c[3:] for c in varying][:MAX_SCATTER]
            log_params = set()
            if params:
                page.note(f"{s.name}: the scatter below shows the first few varying "
                          "parameters instead of the important ones")
        params = [p for p in params if f"hp_{p}" in s.trials.columns]
        ended = s.trials[(s.trials["state"] != UNFINISHED)]
        if params and np.isfinite(ended["value"].astype(float)).sum() >= 2:
            path = plots.param_scatter(f"{s.label}: {s.metric} against each important "
                                       "hyperparameter", ended, params, s.metric, log_params,
                                       ctx.png(f"scatter-{s.name}"))
            page.image(path, f"{s.name}: {s.metric} against the value of "
                       + ", ".join(params))
        elif params:
            page.note(f"{s.name}: scatter skipped — fewer than 2 ended configurations with a "
                      f"finite {s.metric}")


# ---- budget --------------------------------------------------------------------------------

def best_so_far_series(s: Sweep) -> dict:
    """Ended runs in the order they ended: count, cumulative budget (training steps) and
    training seconds spent, and the best value of a *completed* run so far (NaN before the
    first; a stopped run spends budget but is never the incumbent). A revived run ends twice:
    at its pause and at its end (analysis.sweeps.budget_events)."""
    t = budget_events(s.trials)
    best, out_best = math.nan, []
    for v, state in zip(t["value"].astype(float), t["state"]):
        if state == layout.COMPLETED and ranking.better(v, best, s.mode):
            best = v
        out_best.append(best)
    compute = np.nancumsum(t["time_s"].astype(float).to_numpy())
    steps = np.nancumsum(t["steps"].astype(float).to_numpy())
    return {"label": s.label, "n": [int(n) for n in t["runs"]], "compute": list(compute),
            "steps": list(steps), "best": out_best}


def _best_so_far_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Best objective so far")
    page.p("The best value of each sweep's metric (as measured) among runs that completed, "
           "against the number of runs ended and against the budget spent, per family — how "
           "Hyperband, ASHA and BOHB judge a search. Budget is training steps summed over "
           "runs, a stopped run's up to where it stopped (what `budget: {steps: N}` counts); "
           "the table also gives training seconds (each run's time_s, training and scoring, "
           "summed: not wall-clock, since runs go in parallel).")
    if not ctx.searches:
        page.note("skipped — only seed reruns were given")
        return
    groups: dict[tuple[str, str], list[Sweep]] = {}
    for s in ctx.searches:  # one plot per dataset and metric: only those numbers compare
        groups.setdefault((s.dataset_name, s.metric), []).append(s)
    for (dname, metric), group in groups.items():
        series = [best_so_far_series(s) for s in group]
        rows = []
        for s, ser in zip(group, series):
            finite = [b for b in ser["best"] if math.isfinite(b)]
            budget = s.budget.get("steps")
            rows.append({"sweep": s.name, "family": s.trainer, "dataset": s.dataset_name,
                         "runs ended": ser["n"][-1] if ser["n"] else 0,
                         "budget spent (steps)": fmt(ser["steps"][-1] if ser["steps"]
                                                     else 0.0)
                         + (f" of {fmt(budget)}" if budget else ""),
                         "compute (training s)": fmt(ser["compute"][-1] if ser["compute"]
                                                     else 0.0),
                         f"best {metric}": fmt(finite[-1]) if finite else "none yet"})
        page.h(3, f"{metric} ({DIRECTIONS[metric]}) on {dname}")
        page.table(pd.DataFrame(rows))
        if not any(any(math.isfinite(b) for b in ser["best"]) for ser in series):
            page.note(f"{dname}, {metric}: plot skipped — no configuration has ended with a "
                      "finite value")
            continue
        path = plots.best_so_far(metric, dname, series,
                                 ctx.png(f"best-so-far-{dname}-{metric}"))
        page.image(path, f"{dname}: best {metric} so far against configurations and compute")


def early_stop_row(s: Sweep) -> dict:
    t = s.trials
    ended = t[t["state"] != UNFINISHED]
    stopped = ended[ended["state"].isin(STOPPED_EARLY)]
    planned = float(ended["steps_planned"].astype(float).sum())
    saved_steps = (stopped["steps_planned"].astype(float)
                   - stopped["stop_step"].astype(float)).clip(lower=0)
    per_step = stopped["time_s"].astype(float) / stopped["stop_step"].astype(float).where(
        stopped["stop_step"].astype(float) > 0)
    est = float(np.nansum(per_step * saved_steps))
    spent = float(np.nansum(t["time_s"].astype(float)))
    return {"sweep": s.name, "family": s.trainer, "runs ended": len(ended),
            "stopped early": len(stopped),
            "of which": ", ".join(f"{n} {k}" for k, n in
                                  stopped["state"].value_counts().items()) or "-",
            "steps planned": fmt(planned), "steps run": fmt(float(ended["stop_step"].sum())),
            "steps saved": fmt(float(saved_steps.sum())),
            "saved %": fmt(100.0 * float(saved_steps.sum()) / planned) if planned else "",
            "compute spent (s)": fmt(spent), "est. compute saved (s)": fmt(est)}


def _early_stop_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Compute saved by early stopping")
    page.p("For configurations stopped before their planned steps (collapsed, diverged, or "
           "stopped by ASHA): steps saved = steps planned − step where each stopped, summed; "
           "saved % is of the steps planned for all ended configurations (steps are training "
           "steps; for SOMs, epochs). Estimated seconds saved = each stopped run's seconds per "
           "step × the steps it did not run. Unfinished configurations are not counted.")
    page.table(pd.DataFrame([early_stop_row(s) for s in ctx.sweeps]))
    if not any(s.trials["state"].isin(STOPPED_EARLY).any() for s in ctx.sweeps if len(s.trials)):
        page.note("no configuration was stopped early: nothing saved (and nothing lost)")


# ---- family comparison -------------------------------------------------------------------

def _metric_values(s: Sweep, metric: str) -> np.ndarray:
    ended = s.trials[s.trials["state"] != UNFINISHED]
    col = "value" if metric == s.metric else f"final_{metric}"
    if col not in ended.columns:
        return np.array([])
    v = ended[col].astype(float).to_numpy()
    return v[np.isfinite(v)]


def family_rows(group: list[Sweep], metric: str) -> list[dict]:
    rows = []
    for s in group:
        v = _metric_values(s, metric)
        if not len(v):
            rows.append({"family": s.trainer, "sweep": s.name, "dataset": s.dataset_name,
                         "metric": metric, "n": 0, "best": "", "median": "", "IQR": "",
                         "spread (q75−q25)": ""})
            continue
        best = ranking.best(v, DIRECTIONS[metric])
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        rows.append({"family": s.trainer, "sweep": s.name, "dataset": s.dataset_name,
                     "metric": f"{_metric_name(s, metric)} ({DIRECTIONS[metric]})", "n": len(v),
                     "best": fmt(best), "median": fmt(q50), "IQR": f"{fmt(q25)} – {fmt(q75)}",
                     "spread (q75−q25)": fmt(q75 - q25)})
    return rows


def _measured(s: Sweep) -> set[str]:
    return {m for m in DIRECTIONS if len(_metric_values(s, m))}


def shared_metrics(group: list[Sweep]) -> list[str]:
    """Metrics every sweep of the group measured, objectives first (at most 3)."""
    have = [_measured(s) for s in group]
    common = set.intersection(*have) if have else set()
    order = [s.metric for s in group] + [m for names in QUALITY.values() for m in names]
    out = []
    for m in order:
        if m in common and m not in out:
            out.append(m)
    return out[:3]


def _metric_name(s: Sweep, metric: str) -> str:
    """`fid` named with the features it was measured in (Inception-v3 or gansweep's own)."""
    return features.fid_label(s.features) if metric == "fid" else metric


def comparable_groups(group: list[Sweep]) -> list[list[Sweep]]:
    """Sweeps of one dataset split into groups that share at least one measured metric (the
    GAN families' sample-quality scores; the SOMs' map errors) and the features fid and the
    k-NN scores are measured in (`features`), in the order given. What a run cost is measured
    by every family alike, so it does not make two comparable (a SOM and a GAN both time
    their runs)."""
    clusters: list[tuple[list[Sweep], set[str]]] = []
    for s in group:
        ms = _measured(s) - COST_METRICS
        for members, shared in clusters:
            same_space = features.space(members[0].features) == features.space(s.features)
            if shared & ms and same_space:
                members.append(s)
                shared &= ms
                break
        else:
            clusters.append(([s], ms))
    return [members for members, _ in clusters]


def _family_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Family comparison")
    page.p("Sweeps of different trainers on the same dataset, side by side: best and median of "
           "each shared metric over the ended configurations, and the spread across them "
           "(interquartile range; box plot with every configuration as a point).")
    searches = ctx.searches
    if len(searches) < 2:
        page.note("skipped — one sweep given; give sweeps of several trainers (e.g. "
                  "`gansweep report DIR_A DIR_B --out OUT`) to compare families")
        return
    by_data: dict[str, list[Sweep]] = {}
    for s in searches:
        by_data.setdefault(s.dataset_name, []).append(s)
    own: list[Sweep] = []  # sweeps no shared metric compares: shown on their own objectives
    for dname, sweeps_on in by_data.items():
        for group in comparable_groups(sweeps_on):
            if len(group) < 2:
                own += group
                continue
            page.h(3, f"On {dname}: " + ", ".join(s.label for s in group))
            if len({s.trainer for s in group}) < 2:
                page.note(f"{dname}: these sweeps are all of trainer {group[0].trainer}; "
                          "compared as sweeps of one family")
            metrics = shared_metrics(group)
            page.table(pd.DataFrame([r for m in metrics for r in family_rows(group, m)]))
            panels = [(m, [(f"{s.trainer}\n{s.name}", _metric_values(s, m)) for s in group],
                       _metric_name(group[0], m)) for m in metrics]
            slug = "-".join(s.name for s in group)[:80]
            path = plots.family_spread(f"Families on {dname}", panels,
                                       ctx.png(f"families-{dname}-{slug}"))
            page.image(path, f"families on {dname}: spread across configurations")
        if len(sweeps_on) > 1 and any(len(g) == 1 for g in comparable_groups(sweeps_on)):
            alone = [g[0].label for g in comparable_groups(sweeps_on) if len(g) == 1]
            page.note(f"{dname}: {', '.join(alone)} measured no metric in common with the other "
                      "sweeps on it (SOMs report map errors, GANs sample-quality scores; fid "
                      "and the k-NN scores in other features do not compare): shown below on "
                      "its own objective")
    if own:
        page.h(3, "Side by side, each family on its own objective")
        page.note("these sweeps share no dataset and metric with another sweep given, so "
                  "their numbers do not compare directly: each row is a family's own objective "
                  "over its ended configurations (best, median, spread), for reading side by "
                  "side")
        page.table(pd.DataFrame([r for s in own for r in family_rows([s], s.metric)]))
        # one panel per sweep: a metric on different data has a scale of its own
        panels = [(s.metric, [(f"{s.trainer}\n{s.name}", _metric_values(s, s.metric))],
                   f"{s.trainer} on {s.dataset_name}: {s.metric}") for s in own]
        if any(len(p[1][0][1]) for p in panels):
            path = plots.family_spread("Each family on its own objective", panels,
                                       ctx.png("families-own-objectives"))
            page.image(path, "each family's objective: spread across its configurations")
        else:
            page.note("plot skipped — no configuration has ended with a finite value")


# ---- seeds ----------------------------------------------------------------------------------

def _seed_verdict(summ: pd.DataFrame) -> str:
    top = summ.iloc[0]
    text = f"Best by mean: config {top['config']} ({fmt(top['mean'])} ± {fmt(top['std'])})"
    first = summ[summ["sweep_rank"] == 1]
    if len(summ) > 1 and summ.iloc[1]["mean"] == top["mean"] \
            and fmt(summ.iloc[1]["std"]) == fmt(top["std"]):
        return (text + f"; tied with config {summ.iloc[1]['config']} (sweep ranks "
                f"{fmt(top['sweep_rank'])} and {fmt(summ.iloc[1]['sweep_rank'])}): more seeds, "
                "or a finer metric, would separate them.")
    if fmt(top["sweep_rank"]) == "1":
        return text + "; it was also the sweep's best."
    if not len(first):
        return text + f"; it was #{fmt(top['sweep_rank'])} in the sweep."
    best = first.iloc[0]
    return (text + f"; it was #{fmt(top['sweep_rank'])} in the sweep, ahead of the sweep's "
            f"best (config {best['config']}: {fmt(best['mean'])} ± {fmt(best['std'])}), so the "
            "single-seed ranking did not hold.")


def _seed_section(page: Page, ctx: _Context) -> None:
    page.h(2, "Seed robustness")
    page.p("The top configurations of a sweep trained again under new seeds (`gansweep rerun "
           "SWEEP_DIR --top K --seeds S`, a sweep of its own in SWEEP_DIR-rerun), ranked by "
           "the mean of the metric across the new seeds, with the spread (sample standard "
           "deviation) — not by one lucky seed. The value the configuration had in the sweep "
           "(under the sweep's seed) is shown beside it and not counted in the mean.")
    reruns = [s for s in ctx.sweeps if s.is_rerun]
    if not reruns:
        names = " ".join(str(s.root) for s in ctx.searches[:1])
        page.note(f"skipped — no rerun found next to the given sweeps; run `gansweep rerun "
                  f"{names or 'SWEEP_DIR'} --top 3 --seeds 3` and report again")
        return
    for r in reruns:
        of = layout.sweep_path(r.rerun["of"])
        original = next((s for s in ctx.sweeps if s.root.resolve() == of.resolve()), None)
        if original is None and layout.is_sweep_dir(of):
            try:
                original = load_sweep(of)
            except Exception:  # noqa: BLE001 - the rerun still stands on its own
                original = None
        page.h(3, f"{r.name}: top {r.rerun.get('top')} of {of.name} under seeds "
               + ", ".join(str(x) for x in r.rerun.get("seeds", [])))
        if not r.finished:
            page.warn(r.progress_line())
        summ = rerun_summary(r, original)
        if not len(summ):
            page.note(f"{r.name}: skipped — no rerun trial has written results yet")
            continue
        varying = [c for c in summ.columns if c.startswith("hp_")
                   and summ[c].astype(str).nunique() > 1]
        rows = []
        for x in summ.to_dict("records"):
            row = {"rank by mean": x["rank"], "config": x["config"],
                   "sweep rank": fmt(x["sweep_rank"]), "sweep value": fmt(x["sweep_value"]),
                   f"mean {r.metric}": fmt(x["mean"]), "std": fmt(x["std"]),
                   "min": fmt(x["min"]), "max": fmt(x["max"]),
                   "seeds ended": f"{x['ended']}/{x['seeds']}",
                   "collapsed": x["collapsed"], "diverged": x["diverged"]}
            for c in varying:
                row[c[3:]] = fmt(x[c])
            rows.append(row)
        page.table(pd.DataFrame(rows))
        page.p(_seed_verdict(summ))
        if np.isfinite(summ["mean"].astype(float)).any():
            path = plots.seed_spread(f"{r.name}: {r.metric} across seeds", r.metric, summ,
                                     ctx.png(f"seeds-{r.name}"))
            page.image(path, f"{r.name}: each configuration's value under every new seed")


# ---- what ran ------------------------------------------------------------------------------

def what_ran(s: Sweep) -> pd.DataFrame:
    """One row per driver run: when, the driver's versions, and each node's host, devices and
    versions where they differ from the driver's."""
    rows = []
    for run in s.driver_runs:
        v = run.versions or {}
        nodes = []
        for info in (run.nodes or {}).values():
            own = [f"{k} {info[k]}" for k in ("gansweep", "python", "torch")
                   if info.get(k) is not None and info.get(k) != v.get(k)]
            cuda = f", CUDA {info['cuda']}" if info.get("cuda") else ""
            nodes.append(f"{info.get('host', '?')}: {', '.join(info.get('devices') or [])}"
                         f"{cuda}" + (f" ({', '.join(own)})" if own else ""))
        gansweep = v.get("gansweep", "-") + (f" @ {v['commit']}" if v.get("commit") else "")
        rows.append({"sweep": s.name, "driver run": run.name or run.run_id or "-",
                     "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.started))
                     if run.started else "-",
                     "gansweep": gansweep if v else "not recorded",
                     **{k: v.get(k, "-") for k in ("python", "torch", "ray", "optuna")},
                     "nodes": "; ".join(sorted(set(nodes))) or "-"})
    return pd.DataFrame(rows)


def _what_ran_section(page: Page, ctx: _Context) -> None:
    page.h(2, "What ran")
    tables = [what_ran(s) for s in ctx.sweeps]
    table = pd.concat([t for t in tables if len(t)], ignore_index=True) if any(
        len(t) for t in tables) else pd.DataFrame()
    if not len(table):
        page.note("no driver runs recorded")
        return
    page.p("Per driver run (submit, each resume, a rerun): the driver's gansweep version and "
           "git commit (+dirty: uncommitted changes), Python and library versions, and each "
           "node that trained a run, with its devices (and its own versions where they "
           "differ from the driver's). Sweeps made before 2026-12 did not record them.")
    page.table(table)
    for line in version_differences({s.name: s.driver_runs for s in ctx.sweeps}):
        page.warn(f"different versions: {line}; results may differ for that reason alone")
