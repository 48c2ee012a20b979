"""The real-demand study's own pieces (``idn reproduce paper --only real``):
the figure of the demand itself (volume over the days, the top streams'
shares over time), how much adapting can be worth on it (the per-slot bound
over the static one), and the section they make in the report."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pandas as pd

from .report_headline import ci95


def hourly_demand(root: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Requests per hour of the ServeGen directory: one column per stream
    (rate x window length, summed over each hour's six windows), and the
    stream names by total volume, largest first."""
    from ..workloads.importers import read_streams

    st = read_streams(root)
    per_window = st.expected
    k = 3600 // st.window_seconds
    W = per_window.shape[1] // k * k
    hourly = per_window[:, :W].reshape(len(st.names), -1, k).sum(axis=2)
    frame = pd.DataFrame(hourly.T, columns=list(st.names))
    order = list(frame.sum().sort_values(ascending=False, kind="stable").index)
    return frame, order


def plot_demand(root: str | Path, stem: str | Path, top: int = 8, study_days: float | None = 7.0) -> Path:
    """Two panels over the trace's days: requests per hour by model, and the
    shares of the ``top`` most requested streams (the rest as "others").
    Writes stem.png and stem.svg; returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame, order = hourly_demand(root)
    days = np.arange(len(frame)) / 24.0
    models = sorted({name.split("/")[0] for name in frame.columns})
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, constrained_layout=True)
    by_model = [frame[[c for c in frame.columns if c.split("/")[0] == m]].sum(axis=1) / 3600.0 for m in models]
    ax1.stackplot(days, by_model, labels=models, alpha=0.85)
    ax1.set_ylabel("requests / s (hourly mean)")
    ax1.set_title(f"ServeGen language traces: {frame.shape[1]} (model, client) streams, {len(frame) / 24:.0f} days")
    ax1.legend(loc="upper left", fontsize=8)
    total = frame.sum(axis=1).replace(0, np.nan)
    shares = [frame[s] / total for s in order[:top]]
    others = 1.0 - sum(shares)
    ax2.stackplot(days, [*shares, others], labels=[*order[:top], "others"],
                  colors=[*plt.cm.tab10.colors[:top], (0.8, 0.8, 0.8)], alpha=0.9)  # fmt: skip
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("share of the hour's requests")
    ax2.set_xlabel("day")
    ax2.set_title(f"the {top} most requested streams' shares (over all {len(frame) / 24:.0f} days)")
    ax2.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7)
    if study_days:
        for ax in (ax1, ax2):
            ax.axvline(study_days, color="k", lw=0.8, ls="--")
        ax1.annotate(f"the study's {study_days:g} days", xy=(study_days, 0.95), xycoords=("data", "axes fraction"),
                     ha="right", va="top", fontsize=8)  # fmt: skip
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    fig.savefig(stem.with_suffix(".svg"))
    plt.close(fig)
    return stem.with_suffix(".png")


def adapting_worth(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (scenario, workload): the per-slot bound over the static bound,
    mean ± 95% interval and range over seeds (one bound pair per seed)."""
    groups = runs.drop_duplicates("bound_key").groupby(["scenario", "workload"], sort=True)
    rows = []
    for (scenario, workload), g in groups:
        ratio = (g["per_slot_lp_bound"] / g["lp_bound"]).to_numpy()  # lp_bound: the static bound
        mean, half = ci95(ratio)
        rows.append({"scenario": scenario, "workload": workload, "slots": int(g["slots"].iloc[0]), "seeds": len(ratio),
                     "per-slot / static bound": f"{mean:.4f} ± {half:.4f}" if np.isfinite(half) else f"{mean:.4f}",
                     "range": f"{ratio.min():.4f}-{ratio.max():.4f}"})  # fmt: skip
    return pd.DataFrame(rows)


def add_real_section(report_dir: Path, runs: pd.DataFrame, root: str | Path) -> None:
    """The demand figure and the adapting-worth table, appended to report.html and report.md."""
    stem = report_dir / "figures" / "real-demand"
    png = plot_demand(root, stem)
    table = adapting_worth(runs)
    text = (
        "The ServeGen traces the real-demand sweeps import (requests per hour by model; the most requested streams' "
        "shares), and how much adapting can be worth on them: the per-slot bound (any policy) over the static bound "
        "(any static allocation), per seed of the mapping."
    )
    md_rows = "\n".join("| " + " | ".join(str(v) for v in r) + " |" for r in table.itertuples(index=False))
    md = report_dir / "report.md"
    md.write_text(
        md.read_text().rstrip("\n") + f"\n\n## Real demand\n\n{text}\n\n![real demand](figures/real-demand.png)\n\n"
        f"| {' | '.join(table.columns)} |\n|{'---|' * len(table.columns)}\n{md_rows}\n\n"
        "Gain over the per-slot bound, and INFIDA minus each policy paired by seed (95% intervals):\n\n"
        f"{markdown_tables(runs)}\n"
    )
    data = base64.b64encode(png.read_bytes()).decode()
    rows = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in table.itertuples(index=False))
    head = "".join(f"<th>{c}</th>" for c in table.columns)
    section = (f"<h2>Real demand</h2><p>{text}</p><img src=\"data:image/png;base64,{data}\" alt=\"real demand\">"
               f"<table><tr>{head}</tr>{rows}</table>")  # fmt: skip
    html = report_dir / "report.html"
    html.write_text(html.read_text().replace("</body></html>", section + "</body></html>"))


POLICY_COLUMNS = [  # (label in the store, column title)
    ("infida (rounding=fresh)", "INFIDA fresh"), ("infida (rounding=coupled)", "INFIDA coupled"),
    ("local-greedy", "local-greedy"), ("lfu", "lfu"), ("lru", "lru"), ("online-greedy", "online-greedy (centr.)"),
    ("static-greedy", "static-greedy (offline)"), ("infida-offline", "INFIDA-offline"),
]  # fmt: skip
AGAINST = ["local-greedy", "lfu", "lru", "online-greedy", "static-greedy", "infida-offline"]


def _labelled(runs: pd.DataFrame) -> pd.DataFrame:
    from .report import policy_labels

    runs = runs.reset_index(drop=True)  # stores concatenated repeat their index; labels are set by index
    runs["label"] = policy_labels(runs)
    runs["frac"] = runs["total_gain"] / runs["per_slot_lp_bound"]
    return runs


def markdown_tables(runs: pd.DataFrame) -> str:
    """The tables docs/results.md quotes: every policy's gain over the
    per-slot bound (mean ± 95% over seeds), and INFIDA minus each other
    policy, paired by seed (better / worse when the interval excludes 0)."""
    runs = _labelled(runs)
    keys = ["scenario", "workload"]
    lines = ["| topology | workload | " + " | ".join(t for _, t in POLICY_COLUMNS) + " |",
             "|---|---|" + "---|" * len(POLICY_COLUMNS)]  # fmt: skip
    for (sc, wl), g in runs.groupby(keys, sort=False):
        cells = []
        for label, _ in POLICY_COLUMNS:
            mean, half = ci95(g.loc[g["label"] == label, "frac"])
            cells.append("-" if not np.isfinite(mean) else f"{mean:.3f} ± {half:.3f}")
        lines.append(f"| {sc} | {wl} | " + " | ".join(cells) + " |")
    lines += ["", "| topology | workload | INFIDA | " + " | ".join(AGAINST) + " |", "|---|---|---|" + "---|" * len(AGAINST)]
    for (sc, wl), g in runs.groupby(keys, sort=False):
        wide = g.pivot_table(index="seed", columns="label", values="frac", aggfunc="first")
        for inf in ("infida (rounding=fresh)", "infida (rounding=coupled)"):
            if inf not in wide:
                continue
            cells = []
            for other in AGAINST:
                if other not in wide:
                    cells.append("-")
                    continue
                mean, half = ci95((wide[inf] - wide[other]).dropna())
                verdict = "**better**" if mean - half > 0 else "**worse**" if mean + half < 0 else "tie"
                cells.append(f"{mean:+.3f} ± {half:.3f} {verdict}")
            lines.append(f"| {sc} | {wl} | {inf.split('=')[1].rstrip(')')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_by_window(runs: pd.DataFrame, slots: pd.DataFrame, a: str, b: str, windows) -> pd.DataFrame:
    """Policy a's total gain over policy b's in each window [lo, hi) of slots,
    per (scenario, workload): mean ± 95% interval over seeds (runs paired by
    seed). ``a`` and ``b`` are labels (``infida (rounding=fresh)``, ``lfu``)."""
    runs = _labelled(runs)
    rows = []
    for (sc, wl), g in runs.groupby(["scenario", "workload"], sort=False):
        ids = {lab: dict(zip(sub["seed"], sub["run_id"])) for lab, sub in g.groupby("label")}
        if a not in ids or b not in ids:
            continue
        for lo, hi in windows:
            sel = slots[(slots["slot"] >= lo) & (slots["slot"] < hi)].groupby("run_id")["gain"].sum()
            r = [sel.get(ids[a][s], np.nan) / sel.get(ids[b][s], np.nan) for s in ids[a] if s in ids[b]]
            mean, half = ci95(r)
            rows.append({"scenario": sc, "workload": wl, "slots": f"{lo}-{hi}", "ratio": mean, "half_width": half})
    return pd.DataFrame(rows)
