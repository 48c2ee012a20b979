"""The figures of ``idn report``, one function each. They draw on
``matplotlib.figure.Figure`` objects directly (no pyplot state, so reports can
be built from threads or servers; saving goes through the Agg and SVG
canvases). Each takes the runs of one (scenario, workload), already labelled
(column ``label``: the policy plus the parameters that tell its variants
apart), and raises :class:`Skip` with the reason when its data is missing.

Bands and error bars span min to max over seeds: with the handful of seeds a
sweep has, that says more than a standard deviation.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
import pandas as pd
from matplotlib.figure import Figure

from ..model.network import TIERS

TIER_COLORS = {"access": "#1b9e77", "edge": "#7570b3", "regional": "#d95f02", "cloud": "#999999"}


class Skip(Exception):
    """A figure that cannot be drawn from the data there is; the message says why."""


def _figure(width: float = 7.5, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def moving_average(a: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` entries along the last axis (fewer
    at the start, so the curve starts at slot 0 instead of slot window-1)."""
    a = np.asarray(a, dtype=float)
    if window <= 1 or a.shape[-1] == 0:
        return a.copy()
    c = np.cumsum(a, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    return out / np.minimum(np.arange(1, a.shape[-1] + 1), window)


def slot_matrix(slots: pd.DataFrame, run_ids, column: str) -> np.ndarray:
    """(runs, slots) array of one slot column; runs of unequal length are cut
    to the shortest, so every column of the result averages the same runs."""
    sub = slots[slots["run_id"].isin(list(run_ids))]
    if sub.empty:
        return np.zeros((0, 0))
    table = sub.pivot_table(index="run_id", columns="slot", values=column, aggfunc="first").sort_index(axis=1)
    return table.dropna(axis=1).to_numpy(dtype=float)


def _style(i: int) -> str:
    """Line styles cycle too, so policies whose curves coincide stay visible."""
    return ("-", "--", "-.", ":")[i % 4]


def _t95(n) -> np.ndarray:
    """Student's t quantile for a 95% interval of a mean of n values (nan below 2)."""
    n = np.asarray(n, dtype=float)
    return np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)


def _band(ax, x, rows: np.ndarray, color, label, i: int = 0) -> None:
    """Mean over seeds (rows) and its 95% interval."""
    mean = rows.mean(axis=0)
    ax.plot(x, mean, color=color, lw=1.4, ls=_style(i), label=label)
    if rows.shape[0] > 1:
        half = _t95(rows.shape[0]) * rows.std(axis=0, ddof=1) / np.sqrt(rows.shape[0])
        ax.fill_between(x, mean - half, mean + half, color=color, alpha=0.15, lw=0)


def _is_reference(label: str) -> bool:
    """cloud-only: gain 0 by definition, the reference the gains are measured from."""
    return label.split(" (")[0] == "cloud-only"


def _labels(runs: pd.DataFrame, colors: dict) -> list[str]:
    present = set(runs["label"])
    return [lab for lab in colors if lab in present]


def _seed_stats(runs: pd.DataFrame, by: list[str], column: str) -> pd.DataFrame:
    """Mean over seeds of column, per by, and its 95% interval (min, max: the ends)."""
    g = runs.dropna(subset=[column]).groupby(by, sort=True)[column]
    half = np.nan_to_num(_t95(g.count()) * g.std(ddof=1) / np.sqrt(g.count()))
    return pd.DataFrame({"mean": g.mean(), "min": g.mean() - half, "max": g.mean() + half}).reset_index()


def _yerr(stats: pd.DataFrame) -> np.ndarray:
    return np.vstack([stats["mean"] - stats["min"], stats["max"] - stats["mean"]]).clip(min=0)


def gain_over_time(runs: pd.DataFrame, slots: pd.DataFrame, colors: dict) -> Figure:
    """Gain and normalized gain per slot, moving average, per policy."""
    fig = _figure(8.0, 5.6)
    ax_gain, ax_norm = fig.subplots(2, 1, sharex=True)
    drawn = 0
    window = 1
    lows = []
    for i, label in enumerate(_labels(runs, colors)):
        if _is_reference(label):
            continue  # gain 0 by definition: it would pin the axes at 0 and flatten the others together
        ids = runs.loc[runs["label"] == label, "run_id"]
        gain = slot_matrix(slots, ids, "gain")
        if gain.size == 0:
            continue
        gmax = slot_matrix(slots, ids, "gain_max")[:, : gain.shape[1]]
        norm = np.divide(gain, gmax, out=np.zeros_like(gain), where=gmax > 0)
        window = max(1, round(gain.shape[1] / 50))
        x = np.arange(gain.shape[1])
        _band(ax_gain, x, moving_average(gain, window), colors[label], label, i)
        smooth = moving_average(norm, window)
        _band(ax_norm, x, smooth, colors[label], label, i)
        lows.append(np.percentile(smooth.mean(axis=0), 10))
        drawn += 1
    if not drawn:
        raise Skip("no per-slot results for these runs")
    low = min(lows)
    ax_norm.set_ylim(max(0.0, low - 0.1 * (1.0 - low) - 0.005), None)  # the policies' range, not 0-1
    ax_gain.set_ylabel("gain per slot")
    ax_norm.set_ylabel("normalized gain per slot")
    ax_norm.set_xlabel(f"slot (moving average over {window} slot{'s' if window > 1 else ''})")
    for ax in (ax_gain, ax_norm):
        ax.grid(alpha=0.3)
    fig.legend(*ax_gain.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def tradeoff(runs: pd.DataFrame, colors: dict) -> Figure:
    """Mean latency against mean accuracy per policy, one point per alpha."""
    if runs["alpha"].nunique() < 2:
        raise Skip("a single alpha: no latency-accuracy trade-off to trace")
    fig = _figure(7.5, 5.0)
    ax = fig.subplots()
    means = runs.groupby(["label", "alpha"])[["mean_latency_ms", "mean_accuracy"]].mean().reset_index()
    lo = means[["mean_latency_ms", "mean_accuracy"]].min().to_numpy()
    span = np.maximum(means[["mean_latency_ms", "mean_accuracy"]].max().to_numpy() - lo, 1e-12)
    tagged: list[tuple[np.ndarray, float]] = []
    for i, label in enumerate(_labels(runs, colors)):
        pts = means[means["label"] == label].sort_values("alpha")
        ax.plot(pts["mean_latency_ms"], pts["mean_accuracy"], marker="o", ls=_style(i), color=colors[label], label=label, ms=4, lw=1.2)
        for _, p in pts.iterrows():
            # policies at one alpha often land close together: one tag serves the cluster
            xy = (np.array([p["mean_latency_ms"], p["mean_accuracy"]]) - lo) / span
            if any(a == p["alpha"] and np.abs(xy - q).max() < 0.06 for q, a in tagged):
                continue
            tagged.append((xy, p["alpha"]))
            ax.annotate(
                f"α={p['alpha']:g}", (p["mean_latency_ms"], p["mean_accuracy"]), textcoords="offset points",
                xytext=(5, -11), fontsize=7, color="#333333",
            )  # fmt: skip
    ax.set_xlabel("mean latency per request (ms)")
    ax.set_ylabel("mean accuracy per request")
    ax.grid(alpha=0.3)
    ax.margins(0.12)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def gain_vs_budget(runs: pd.DataFrame, colors: dict) -> Figure:
    """Normalized gain against the budget scale per policy."""
    if runs["budget_scale"].nunique() < 2:
        raise Skip("a single budget scale: no budget curve to draw")
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    stats = _seed_stats(runs, ["label", "budget_scale"], "normalized_gain")
    scales = np.sort(runs["budget_scale"].unique())
    log = scales.min() > 0 and scales.max() / scales.min() >= 4  # sweeps go by factors of 2
    labels = _labels(runs, colors)
    for i, label in enumerate(labels):
        s = stats[stats["label"] == label]
        # dodge the policies sideways a little so their error bars do not hide each other
        shift = (i - (len(labels) - 1) / 2) * 0.012
        x = s["budget_scale"] * 2 ** (shift * np.log2(scales.max() / scales.min())) if log else s["budget_scale"] + shift * np.ptp(scales)
        ax.errorbar(x, s["mean"], yerr=_yerr(s), marker="o", ls=_style(i), color=colors[label], label=label, ms=4, capsize=3)
    if log:
        ax.set_xscale("log", base=2)
    ax.set_xticks(scales, [f"{s:g}" for s in scales])
    ax.set_xlabel("budget scale (x every node's memory budget)")
    ax.set_ylabel("normalized gain")
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def _grouped_bars(ax, labels, groups, stats_of, colors_of, group_name) -> None:
    """Bars per label (x), one per group side by side, with 95%-interval error bars."""
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(labels))
    for j, group in enumerate(groups):
        s = stats_of(group).set_index("label").reindex(labels)
        err = np.nan_to_num(np.vstack([s["mean"] - s["min"], s["max"] - s["mean"]]).clip(min=0))
        ax.bar(
            x + (j - (len(groups) - 1) / 2) * width, s["mean"].fillna(0), width, yerr=err, capsize=2,
            color=colors_of(j), label=group_name(group), edgecolor="white", lw=0.5,
        )  # fmt: skip
    ax.set_xticks(x, labels, rotation=25, ha="right")
    ax.grid(alpha=0.3, axis="y")


def churn(runs: pd.DataFrame, colors: dict) -> Figure:
    """Model loads over the run per policy, a bar per budget scale."""
    scales = sorted(runs["budget_scale"].unique())
    labels = _labels(runs, colors)
    stats = _seed_stats(runs, ["label", "budget_scale"], "model_loads")
    fig = _figure(max(6.0, 1.0 + 0.9 * len(labels)), 4.5)
    ax = fig.subplots()
    shades = [f"C{j}" for j in range(10)]
    _grouped_bars(
        ax, labels, scales, lambda b: stats[stats["budget_scale"] == b], lambda j: shades[j % 10],
        lambda b: f"budget x{b:g}",
    )  # fmt: skip
    positive = stats.loc[stats["mean"] > 0, "mean"]
    if len(positive) and positive.max() / positive.min() > 30:
        ax.set_yscale("symlog", linthresh=1)  # counts: 0 stays visible, 1..10^k spread evenly
    ax.set_ylabel("model loads over the run")
    if len(scales) > 1:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def psi_regret(curves: dict[str, np.ndarray], benchmark: str, colors: dict) -> Figure:
    """Time-averaged psi-regret R(T)/T against T; curves: label -> (seeds, T)."""
    if not curves:
        raise Skip("no learning policy's run has per-slot results beside those of a static benchmark run on the same trace")
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    for i, label in enumerate(lab for lab in colors if lab in curves):
        rows = curves[label]
        _band(ax, np.arange(1, rows.shape[1] + 1), rows, colors[label], label, i)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("T (slots)")
    ax.set_ylabel(f"ψ-regret / T  (vs. {benchmark})")
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def bound_fraction(runs: pd.DataFrame, colors: dict) -> Figure:
    """Total gain as a fraction of the static and the per-slot LP bounds."""
    kinds = [
        (col, name)
        for col, name in (("fraction_of_bound", "of the static LP bound"), ("fraction_of_per_slot_bound", "of the per-slot LP bound"))
        if col in runs and runs[col].notna().any()
    ]  # fmt: skip
    if not kinds:
        raise Skip("no LP bound was computed for these runs")
    labels = [lab for lab in _labels(runs, colors)
              if not _is_reference(lab) and runs.loc[runs["label"] == lab, [c for c, _ in kinds]].notna().any().any()]
    stats = {col: _seed_stats(runs[runs["label"].isin(labels)], ["label"], col) for col, _ in kinds}
    fig = _figure(max(6.0, 1.0 + 0.9 * len(labels)), 4.5)
    ax = fig.subplots()
    _grouped_bars(
        ax, labels, kinds, lambda k: stats[k[0]], lambda j: ["#4c72b0", "#dd8452"][j % 2], lambda k: k[1],
    )  # fmt: skip
    ax.axhline(1.0, color="black", lw=0.8)
    low = min(float((st["min"]).min()) for st in stats.values()) if labels else 0.0
    bottom = max(0.0, low - 0.1 * (1.0 - low) - 0.005)
    if bottom <= 1 - 1 / np.e:
        ax.axhline(1 - 1 / np.e, color="gray", lw=0.8, ls="--", label="ψ = 1 - 1/e")
    ax.set_ylim(bottom, None)  # the policies' range: cloud-only (0) is left out
    ax.set_ylabel("total gain / LP bound")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig


def served_tiers(runs: pd.DataFrame, slots: pd.DataFrame, colors: dict) -> Figure:
    """Fractions of requests served per tier, per policy and alpha (stacked)."""
    cols = [f"served_{t}" for t in TIERS]
    sub = slots[slots["run_id"].isin(runs["run_id"])]
    if sub.empty:
        raise Skip("no per-slot results for these runs")
    per_run = sub.groupby("run_id")[["requests", *cols]].sum()
    per_run = per_run.join(runs.set_index("run_id")[["label", "alpha"]])
    pooled = per_run.groupby(["label", "alpha"]).sum()  # pooled over seeds and slots
    frac = pooled[cols].div(pooled["requests"].where(pooled["requests"] > 0), axis=0).fillna(0).reset_index()
    labels = [lab for lab in _labels(runs, colors) if lab in set(frac["label"])]
    alphas = sorted(frac["alpha"].unique())
    if len(alphas) == 1:  # one axis, a bar per policy
        panels, ncols = [(None, labels)], 1
        fig = _figure(max(6.0, 1.0 + 0.8 * len(labels)), 4.5)
    else:  # a panel per policy, a bar per alpha
        panels, ncols = [(lab, [lab]) for lab in labels], min(4, len(labels))
        nrows = -(-len(labels) // ncols)
        fig = _figure(2.3 * ncols + 1.4, 2.8 * nrows + 0.6)
    axes = np.atleast_1d(fig.subplots(-(-len(panels) // ncols), ncols, sharey=True, squeeze=False)).ravel()
    for ax, (title, labs) in zip(axes, panels):
        rows = frac[frac["label"].isin(labs)]
        if title is None:
            rows = rows.set_index("label").reindex(labs)
            ticks = labs
        else:
            rows = rows.sort_values("alpha")
            ticks = [f"{a:g}" for a in rows["alpha"]]
            ax.set_title(title, fontsize=9)
        bottom = np.zeros(len(rows))
        for tier, col in zip(TIERS, cols):
            ax.bar(np.arange(len(rows)), rows[col].to_numpy(), 0.7, bottom=bottom, color=TIER_COLORS[tier], label=tier)
            bottom += rows[col].to_numpy()
        ax.set_xticks(np.arange(len(rows)), ticks, rotation=25 if title is None else 0, ha="right" if title is None else "center")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("fraction of requests served")
    if len(alphas) > 1:
        fig.supxlabel("alpha (ms per accuracy point)", fontsize=9)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8, title="tier")
    return fig
