"""The report's figures: matplotlib (Agg), one PNG per figure, every axis labelled.

Each function takes loaded data (analysis.sweeps) and a path, writes the PNG and returns the
path. None of them plots more than a handful of trials: the report picks which.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator, NullFormatter

from gansweep.analysis import layout
from gansweep.analysis.vocabulary import CRITIC_TRAINERS, DIRECTIONS, STEP_NAME

DPI = 90
STATE_COLORS = {layout.COMPLETED: "#1f77b4", layout.COLLAPSED: "#d62728",
                layout.DIVERGED: "#9467bd", layout.ASHA: "#ff7f0e", layout.FAILED: "#7f7f7f",
                layout.UNFINISHED: "#2ca02c"}
TOP_COLORS = plt.get_cmap("tab10").colors
STOPPED_COLORS = ("#d62728", "#8c564b", "#e377c2")
REAL = "#b0b0b0"

plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9,
                     "legend.fontsize": 8, "figure.dpi": DPI})


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def _metric_label(metric: str) -> str:
    arrow = "lower is better" if DIRECTIONS.get(metric) == "min" else "higher is better"
    return f"{metric} ({arrow})" if metric in DIRECTIONS else metric


# ---- training curves -----------------------------------------------------------------------

def curve_panels(kind: str, trainer: str) -> list[tuple[str, str]]:
    """What a run's curves show: a map's errors (OUTPUT "weights"), else losses and mode
    diversity."""
    if kind == "weights":
        return [("quantization_error", "quantization error"),
                ("topographic_error", "topographic error"),
                ("unit_utilization", "unit utilization")]
    d = "critic loss (loss_d)" if trainer in CRITIC_TRAINERS else "discriminator loss (loss_d)"
    return [("loss_g", "generator loss (loss_g)"), ("loss_d", d),
            ("mode_diversity", "mode diversity (0..1)")]


def curves(title: str, kind: str, trainer: str, picks: list[dict], path: Path) -> Path:
    """Curves of the picked trials. Each pick: {"curve": DataFrame, "label", "stopped": bool,
    "state"}; the last point of each line is marked where the run stopped."""
    panels = curve_panels(kind, trainer)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    handles = []
    i_top = i_stop = 0
    for pick in picks:
        c = pick["curve"]
        if pick["stopped"]:
            color, style = STOPPED_COLORS[i_stop % len(STOPPED_COLORS)], "--"
            i_stop += 1
        else:
            color, style = TOP_COLORS[i_top % len(TOP_COLORS)], "-"
            i_top += 1
        line = None
        for ax, (col, _) in zip(axes[0], panels):
            if col not in c.columns or "step" not in c.columns:
                continue
            y = pd.to_numeric(c[col], errors="coerce")
            (line,) = ax.plot(c["step"], y, style, color=color, lw=1.5)
            ok = np.isfinite(y.to_numpy(dtype=float))
            if ok.any():
                j = np.flatnonzero(ok)[-1]
                ax.plot([c["step"].iloc[j]], [y.iloc[j]], marker="X" if pick["stopped"] else "o",
                        color=color, ms=7, mec="black", mew=0.6)
        if line is not None:
            handles.append((line, pick["label"]))
    for ax, (col, label) in zip(axes[0], panels):
        ax.set_xlabel(STEP_NAME[kind])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if col == "mode_diversity":
            ax.set_ylim(-0.03, 1.03)
    fig.suptitle(title + "  (marker: where the run ended; X: stopped early)")
    fig.tight_layout()
    if handles:
        fig.legend([h for h, _ in handles], [lab for _, lab in handles], loc="upper center",
                   bbox_to_anchor=(0.5, -0.01), ncol=min(3, len(handles)), frameon=False)
    return _save(fig, path)


# ---- samples -------------------------------------------------------------------------------

def _image_grid(x: np.ndarray, n: int = 64) -> np.ndarray:
    """N x C x H x W in [-1, 1] (or N x H x W) into one mosaic in [0, 1]."""
    x = np.asarray(x[:n], dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    k, c, h, w = x.shape
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    pad = 1
    out = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.float32)
    for i in range(k):
        r, q = divmod(i, cols)
        tile = np.transpose(x[i], (1, 2, 0))
        out[pad + r * (h + pad):pad + r * (h + pad) + h,
            pad + q * (w + pad):pad + q * (w + pad) + w] = (np.clip(tile, -1, 1) + 1) / 2
    return out[..., 0] if c == 1 else out


def _project(real: np.ndarray, *others: np.ndarray):
    """Vectors of more than 2 dimensions onto the real data's first 2 principal axes."""
    mu = real.mean(0)
    _, _, vt = np.linalg.svd(real - mu, full_matrices=False)
    v = vt[:2].T
    return [(a.reshape(len(a), -1) - mu) @ v for a in (real, *others)]


def samples(title: str, panels: list[dict], real: np.ndarray | None, kind: str,
            path: Path) -> Path:
    """One panel per trial: {"samples": array, "label"}. Images as a mosaic; 2-D vectors as a
    scatter over the real data; 1-D as a histogram over the real density."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.9), squeeze=False)
    for ax, p in zip(axes[0], panels):
        x = np.asarray(p["samples"], dtype=np.float32)
        if kind == "image":
            grid = _image_grid(x)
            ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            x = x.reshape(len(x), -1)
            r = None if real is None else real.reshape(len(real), -1)
            dim = x.shape[1]
            if dim == 1:
                bins = np.histogram_bin_edges(np.concatenate([x[:, 0]] + (
                    [r[:, 0]] if r is not None else [])), bins=60)
                if r is not None:
                    ax.hist(r[:, 0], bins=bins, density=True, color=REAL, label="real (held out)")
                ax.hist(x[:, 0], bins=bins, density=True, histtype="step", lw=1.6,
                        color=TOP_COLORS[0], label="generated")
                ax.set_xlabel("x")
                ax.set_ylabel("density")
            else:
                xlabel, ylabel = "x[0]", "x[1]"
                if dim > 2 and r is not None:
                    r, x = _project(r, x)
                    xlabel, ylabel = "PC 1 of real data", "PC 2 of real data"
                ax.scatter(x[:2000, 0], x[:2000, 1], s=3, color=TOP_COLORS[0], alpha=0.5,
                           label="generated", zorder=2)
                if r is not None:  # on top: where the real modes are must stay visible
                    ax.scatter(r[:1000, 0], r[:1000, 1], s=4, color=TOP_COLORS[1], alpha=0.6,
                               marker="x", linewidths=0.6, label="real (held out)", zorder=3)
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel)
                ax.set_aspect("equal", adjustable="datalim")
            ax.grid(alpha=0.3)
        ax.set_title(p["label"])
    fig.suptitle(title)
    if kind != "image":
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), markerscale=3,
                   frameon=False)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
    else:
        fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the title above square mosaics
    return _save(fig, path)


def run_figure(title: str, output_kind: str, output: np.ndarray, data, path: Path) -> Path:
    """One run's output as the report draws it: a map (OUTPUT "weights") over its data, or
    samples (a mosaic of images, a scatter or histogram over the held-out data). `data` is
    the trainer's Dataset (its kind, shape and held-out split)."""
    if output_kind == "weights":
        panels = [{"weights": output, "label": f"{output.shape[0]}x{output.shape[1]} map"}]
        return som_maps(title, panels, data.held_out, data.kind, data.shape, path)
    real = None if data.kind == "image" else data.held_out
    return samples(title, [{"samples": output, "label": "generated"}], real,
                   "image" if data.kind == "image" else "vector", path)


def u_matrix(weights: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance from each unit to its (up to 8) grid neighbours."""
    w = np.asarray(weights, dtype=np.float64)
    rows, cols = w.shape[:2]
    w = w.reshape(rows, cols, -1)
    total = np.zeros((rows, cols))
    count = np.zeros((rows, cols))
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr == dc == 0:
                continue
            r0, r1 = max(0, -dr), rows - max(0, dr)
            c0, c1 = max(0, -dc), cols - max(0, dc)
            d = np.linalg.norm(w[r0:r1, c0:c1] - w[r0 + dr:r1 + dr, c0 + dc:c1 + dc], axis=-1)
            total[r0:r1, c0:c1] += d
            count[r0:r1, c0:c1] += 1
    return total / np.maximum(count, 1)


def som_maps(title: str, panels: list[dict], real: np.ndarray | None, kind: str,
             image_shape: tuple[int, ...] | None, path: Path) -> Path:
    """Per trial, the weight map (unit images, or the grid drawn over the data) and its
    U-matrix. Each panel: {"weights": rows x cols x dim, "label"}."""
    n = len(panels)
    # each row as tall as its map's aspect needs (a 4 x 17 map is a strip, not a square)
    heights = [min(4.4, max(2.4, 4.0 * p["weights"].shape[0] / p["weights"].shape[1] + 1.3))
               for p in panels]
    fig, axes = plt.subplots(n, 2, figsize=(9.0, sum(heights) + 0.5), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for (ax_w, ax_u), p in zip(axes, panels):
        w = np.asarray(p["weights"], dtype=np.float64)
        rows, cols = w.shape[:2]
        flat = w.reshape(rows * cols, -1)
        fits = image_shape is not None and int(np.prod(image_shape)) == flat.shape[1]
        if kind == "image" and fits:
            tiles = flat.reshape(rows * cols, *image_shape)
            if tiles.ndim == 3:
                tiles = tiles[:, None]
            ax_w.imshow(_grid_rows(tiles, rows, cols), cmap="gray", vmin=0, vmax=1,
                        interpolation="nearest")
            ax_w.set_xticks([])
            ax_w.set_yticks([])
            ax_w.set_xlabel(f"{cols} columns of units")
            ax_w.set_ylabel(f"{rows} rows of units")
        else:
            r = None if real is None else real.reshape(len(real), -1)
            xlabel, ylabel = "x[0]", "x[1]"
            g = flat
            if flat.shape[1] == 1:
                g = np.concatenate([flat, np.zeros_like(flat)], 1)
                r = None if r is None else np.concatenate([r, np.zeros_like(r)], 1)
                ylabel = "(1-D data)"
            elif flat.shape[1] > 2 and r is not None:
                r, g = _project(r, flat)
                xlabel, ylabel = "PC 1 of real data", "PC 2 of real data"
            if r is not None:
                ax_w.scatter(r[:, 0], r[:, 1], s=3, color=REAL, label="real (held out)")
            gg = g[:, :2].reshape(rows, cols, 2)
            for i in range(rows):
                ax_w.plot(gg[i, :, 0], gg[i, :, 1], "-", color=TOP_COLORS[0], lw=0.8)
            for j in range(cols):
                ax_w.plot(gg[:, j, 0], gg[:, j, 1], "-", color=TOP_COLORS[0], lw=0.8)
            ax_w.scatter(g[:, 0], g[:, 1], s=10, color=TOP_COLORS[0], zorder=3, label="units")
            ax_w.set_xlabel(xlabel)
            ax_w.set_ylabel(ylabel)
            ax_w.legend(loc="upper right", markerscale=2)
            ax_w.grid(alpha=0.3)
        ax_w.set_title(f"{p['label']}: weight map")
        um = u_matrix(w)
        im = ax_u.imshow(um, cmap="viridis", interpolation="nearest")
        ax_u.set_title("U-matrix (mean distance to 8-neighbours)")
        ax_u.set_xlabel("unit column")
        ax_u.set_ylabel("unit row")
        ax_u.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_u.yaxis.set_major_locator(MaxNLocator(integer=True))
        fig.colorbar(im, ax=ax_u, shrink=0.9, pad=0.03, label="distance")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _grid_rows(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Unit images (rows*cols, C, H, W) laid out on the map's own grid, scaled to [0, 1]."""
    t = np.asarray(tiles, dtype=np.float32)
    lo, hi = float(t.min()), float(t.max())
    t = (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)
    k, _, h, w = t.shape
    out = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1), dtype=np.float32)
    for i in range(k):
        r, q = divmod(i, cols)
        out[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = t[i].mean(0)
    return out


# ---- hyperparameters -----------------------------------------------------------------------

def importance(title: str, importances: dict[str, float], path: Path) -> Path:
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(items) + 1.4))
    ax.barh([k for k, _ in items], [v for _, v in items], color=TOP_COLORS[0])
    for i, (_, v) in enumerate(items):
        ax.text(v, i, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlabel("fANOVA importance (share of the objective's variance)")
    ax.set_ylabel("hyperparameter")
    ax.set_xlim(0, max([v for _, v in items] + [0.01]) * 1.18)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def param_scatter(title: str, trials: pd.DataFrame, params: list[str], metric: str,
                  log_params: set[str], path: Path) -> Path:
    """The metric against each parameter's value, one point per configuration, coloured by how
    it ended."""
    n = len(params)
    fig, axes = plt.subplots(1, n, figsize=(4.0 * n, 3.4), squeeze=False)
    t = trials[np.isfinite(trials["value"].astype(float))]
    for ax, p in zip(axes[0], params):
        col = "hp_" + p
        x = t[col]
        numeric = pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x)
        if not numeric:
            cats = sorted(x.astype(str).unique())
            pos = {c: i for i, c in enumerate(cats)}
            rng = np.random.default_rng(0)
            xv = x.astype(str).map(pos).to_numpy(dtype=float) + rng.uniform(-0.12, 0.12, len(x))
            ax.set_xticks(range(len(cats)))
            ax.set_xticklabels(cats, rotation=20)
        else:
            xv = x.to_numpy(dtype=float)
            if p in log_params:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
        for state, color in STATE_COLORS.items():
            m = (t["state"] == state).to_numpy()
            if m.any():
                ax.scatter(xv[m], t["value"].to_numpy(dtype=float)[m], s=22, color=color,
                           label=state, alpha=0.8, edgecolors="black", linewidths=0.3)
        ax.set_xlabel(p + (" (log scale)" if p in log_params and numeric else ""))
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(f"{metric} vs {p}")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


# ---- budget --------------------------------------------------------------------------------

def best_so_far(metric: str, dataset: str, series: list[dict], path: Path) -> Path:
    """Best completed run so far against runs ended and against budget spent (training
    steps). Each series: {"label", "n": [1..], "steps": [...], "best": [...]}."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, s in enumerate(series):
        color = TOP_COLORS[i % len(TOP_COLORS)]
        a1.step(s["n"], s["best"], where="post", color=color, lw=1.8, label=s["label"])
        a2.step(s["steps"], s["best"], where="post", color=color, lw=1.8, label=s["label"])
        best = np.asarray(s["best"], dtype=float)
        prev = np.concatenate([[np.nan], best[:-1]])
        new = np.isfinite(best) & ~(best == prev)  # a marker where the best improved
        a1.plot(np.asarray(s["n"])[new], best[new], "o", color=color, ms=4)
        a2.plot(np.asarray(s["steps"])[new], best[new], "o", color=color, ms=4)
    a1.set_xlabel("runs ended (in the order they ended; o: a new best)")
    a1.xaxis.set_major_locator(MaxNLocator(integer=True))
    a2.set_xlabel("budget spent: training steps summed over runs (a stopped run's to its "
                  "stop)")
    for ax in (a1, a2):
        ax.set_ylabel("best completed " + _metric_label(metric))
        ax.grid(alpha=0.3)
    a1.set_title(f"{dataset}: best {metric} so far vs runs")
    a2.set_title(f"{dataset}: best {metric} so far vs budget spent")
    a1.legend(loc="best")
    fig.tight_layout()
    return _save(fig, path)


def family_spread(title: str, panels: list[tuple], path: Path) -> Path:
    """One panel per (metric, [(label, values), ...][, panel title]): a box per family (sweep)
    with every configuration's value as a jittered point; at most 4 panels a row."""
    n = len(panels)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    width = max(4.0, 1.5 * max(len(p[1]) for p in panels) + 1.8)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, 3.8 * nrows), squeeze=False)
    rng = np.random.default_rng(0)
    for k, ax in enumerate(axes.ravel()):
        if k >= n:
            ax.set_visible(False)
            continue
        metric, groups = panels[k][0], panels[k][1]
        data = [np.asarray(v, dtype=float) for _, v in groups]
        ax.boxplot([d if len(d) else [np.nan] for d in data],
                   tick_labels=[lab for lab, _ in groups], showfliers=False, widths=0.5)
        for i, g in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.13, 0.13, len(g)), g, s=16, alpha=0.7,
                       color=TOP_COLORS[(i - 1) % len(TOP_COLORS)], edgecolors="black",
                       linewidths=0.3, zorder=3)
        ax.set_ylabel(_metric_label(metric))
        ax.set_xlabel("family (sweep)")
        ax.set_title(panels[k][2] if len(panels[k]) > 2 else metric)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def seed_spread(title: str, metric: str, summary: pd.DataFrame, path: Path) -> Path:
    """Per configuration (ranked by mean): its value under each new seed, mean ± std, and
    its single value in the original sweep."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(summary) + 2.5), 3.8))
    rng = np.random.default_rng(0)
    for i, row in enumerate(summary.itertuples(), start=1):
        vals = np.asarray(row.values, dtype=float)
        ax.scatter(i + rng.uniform(-0.08, 0.08, len(vals)), vals, s=18, color=REAL,
                   edgecolors="black", linewidths=0.3, zorder=2,
                   label="one new seed" if i == 1 else None)
        if np.isfinite(row.mean):
            ax.errorbar([i + 0.22], [row.mean], yerr=[0 if not np.isfinite(row.std) else row.std],
                        fmt="o", color=TOP_COLORS[0], capsize=4, zorder=3,
                        label="mean ± std" if i == 1 else None)
        if np.isfinite(row.sweep_value):
            ax.scatter([i - 0.22], [row.sweep_value], marker="*", s=80, color=TOP_COLORS[1],
                       zorder=3, label="value in the sweep (its seed)" if i == 1 else None)
    ax.set_xticks(range(1, len(summary) + 1))
    ax.set_xticklabels([f"#{r.rank} {r.config}\n(sweep #{_int(r.sweep_rank)})"
                        for r in summary.itertuples()], fontsize=8)
    ax.set_xlabel("configuration, ranked by mean over new seeds")
    ax.set_ylabel(_metric_label(metric))
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


def _int(v: Any) -> str:
    try:
        return str(int(v))
    except (TypeError, ValueError):
        return "?"


def pareto_front(title: str, metrics: tuple[str, str], points: np.ndarray, front: np.ndarray,
                 path: Path, fewer: np.ndarray | None = None) -> Path:
    """Two objectives: every ranked configuration as a point, the Pareto front (`front`: a
    boolean per point) highlighted and connected in the order of its first objective.
    `fewer` marks configurations judged on fewer seeds than the sweep's count, drawn hollow:
    they rank after those judged on every seed, so one can look better and not be on the
    front (racing did not promote it to more seeds)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    on = np.asarray(front, dtype=bool)
    few = np.zeros(len(pts), bool) if fewer is None else np.asarray(fewer, dtype=bool) & ~on
    rest = ~on & ~few
    ax.scatter(pts[rest, 0], pts[rest, 1], s=18, color="0.6", label="other configurations")
    if few.any():
        ax.scatter(pts[few, 0], pts[few, 1], s=22, facecolors="none", edgecolors="0.5",
                   label="judged on fewer seeds (ranked after)")
    line = pts[on][np.argsort(pts[on, 0], kind="stable")]
    ax.plot(line[:, 0], line[:, 1], "-o", color=TOP_COLORS[0], ms=6, lw=1.6,
            label="Pareto front")
    ax.set_xlabel(_metric_label(metrics[0]))
    ax.set_ylabel(_metric_label(metrics[1]))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(fig, path)
