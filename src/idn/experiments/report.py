"""``idn report DIR``: the figures and tables a paper needs from a sweep.

:func:`make_report` takes the two tables of a sweep's result store (runs: one
row per run; slots: one row per run and slot) and writes into ``out/``: every
figure as PNG and SVG under ``figures/``, ``report.html`` (self-contained: the
PNGs are embedded as data URIs) and ``report.md`` (relative image links).

Figures are drawn per (scenario, workload). The ones that fix a knob use a
reference value, said in the report: budget scale 1 if the sweep has it (else
the lower median), then the lower median of the alphas run at that budget.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from ..sim.loop import SLOT_COLUMNS
from . import plots
from .report_headline import headline_tables
from .report_tables import FORMATS, format_value, regret_table, ranking_table, summary_table

PSI = 1.0 - 1.0 / np.e
# the best static allocation known, in order of preference: the exact optimum, then the benchmarks
STATIC_BENCHMARKS = ("optimal", "infida-offline", "static-greedy")
TRACE_KEYS = ["scenario", "workload", "seed", "alpha", "budget_scale"]  # runs with equal keys saw the same requests
RUN_COLUMNS = ["run_id", *TRACE_KEYS, "policy", "total_gain", "normalized_gain", "mean_latency_ms", "mean_accuracy",
               "model_loads", "seconds_per_slot"]  # fmt: skip
# not learning policies: no regret curve of their own
_STATIC_NAMES = {"cloud-only", "fixed"}

__all__ = ["make_report", "report_dir", "psi_regret_curve", "regret_curves", "policy_labels", "FORMATS", "format_value", "PSI"]


def psi_regret_curve(policy_gains, static_gains, psi: float = PSI) -> np.ndarray:
    """R(T)/T for every prefix T = 1..len: (psi * sum_{t<T} static_t - sum_{t<T} policy_t) / T.

    static_gains are the per-slot gains of one static allocation chosen for
    the whole horizon; it is not re-optimized per prefix, so for T below the
    horizon this is the regret against that allocation, not against the best
    static allocation of the prefix (which can only be larger)."""
    p = np.asarray(policy_gains, dtype=float)
    s = np.asarray(static_gains, dtype=float)
    if p.ndim != 1 or p.shape != s.shape:
        raise ValueError(f"psi_regret_curve: gains must be 1-d of equal length, got shapes {p.shape} and {s.shape}")
    return (psi * np.cumsum(s) - np.cumsum(p)) / np.arange(1, len(p) + 1)


def _is_offline(policy: str) -> bool:
    from ..policies.registry import policy_class

    try:  # plug-ins too (package.module:ClassName, entry points), when importable here
        return bool(policy_class(policy).offline)
    except ValueError:
        return policy in STATIC_BENCHMARKS


def _param_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def policy_labels(runs: pd.DataFrame) -> pd.Series:
    """The policy name, plus (name=value, ...) for the parameters on which
    that policy's runs differ, so each variant gets its own curve."""
    params = [c for c in runs.columns if c.startswith("param_")]
    labels = runs["policy"].astype(str).copy()
    for policy, rows in runs.groupby("policy", sort=False):
        varying = [c for c in params if rows[c].dropna().astype(str).nunique() > 1]
        if not varying:
            continue
        for i, row in rows[varying].iterrows():
            parts = [f"{c[len('param_'):]}={_param_text(row[c])}" for c in varying if not _isnan(row[c])]
            labels[i] = f"{policy} ({', '.join(parts)})" if parts else str(policy)
    return labels


def _isnan(v) -> bool:
    return not isinstance(v, (list, tuple, dict, np.ndarray)) and bool(pd.isna(v))


def _order(labels) -> list[str]:
    """Policies in a fixed order (INFIDA first, cloud-only last) so colours
    and legends agree across figures."""
    rank = {"infida": 0, "online-greedy": 1, "static-greedy": 2, "infida-offline": 3, "optimal": 4, "cloud-only": 9}
    return sorted(set(labels), key=lambda lab: (rank.get(lab.split(" (")[0], 5), lab))


def _colors(labels: list[str]) -> dict[str, str]:
    cmap = matplotlib.colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: matplotlib.colors.to_hex(cmap(i % cmap.N)) for i, lab in enumerate(labels)}


def _prepare(runs: pd.DataFrame, slots: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if runs is None or len(runs) == 0:
        raise ValueError("no finished runs to report on")
    for col in RUN_COLUMNS:
        if col not in runs.columns:
            raise ValueError(f"runs table: missing column {col!r}")
    runs = runs.reset_index(drop=True).copy()
    for col in ("scenario", "workload"):
        runs[col] = runs[col].fillna("default").astype(str)
    for col in ("alpha", "budget_scale", "fraction_of_bound", "fraction_of_per_slot_bound"):
        if col in runs:
            runs[col] = pd.to_numeric(runs[col], errors="coerce")
    for col in ("seed", "alpha", "budget_scale"):
        bad = runs[col].isna()
        if bad.any():
            raise ValueError(f"runs table: column {col!r} is missing or not a number for run {runs.loc[bad, 'run_id'].iloc[0]!r}")
    runs["label"] = policy_labels(runs)
    if slots is None or len(slots) == 0:
        slots = pd.DataFrame(columns=["run_id", *SLOT_COLUMNS])
    else:
        missing = [c for c in ("run_id", *SLOT_COLUMNS) if c not in slots.columns]
        if missing:
            raise ValueError(f"slots table: missing column {missing[0]!r}")
        slots = slots[slots["run_id"].isin(runs["run_id"])]
    return runs, slots


def _reference(values, preferred: float | None = None) -> float:
    vals = sorted(set(float(v) for v in values if not _isnan(v)))
    if preferred is not None and preferred in vals:
        return preferred
    return vals[(len(vals) - 1) // 2]


def regret_curves(runs: pd.DataFrame, slots: pd.DataFrame) -> tuple[str | None, dict[str, np.ndarray], pd.DataFrame]:
    """Psi-regret curves of the learning policies of one (scenario, workload):
    (benchmark policy, {label: (runs, T) curves at every trace key}, one row per
    run with its trace keys, label and final R(T)/T). The benchmark is the
    optimum where it was run; otherwise, per trace key, the best run of the
    static policies present (the closest stand-in for the best static allocation)."""
    present = [b for b in STATIC_BENCHMARKS if b in set(runs["policy"])]
    if not present:
        return None, {}, pd.DataFrame()
    chosen = ["optimal"] if "optimal" in present else present
    benchmark = chosen[0] if len(chosen) == 1 else "the best of " + " / ".join(chosen)
    keys = TRACE_KEYS + [c for c in ("slots", "slot_seconds") if c in runs.columns]
    bench = runs[runs["policy"].isin(chosen)].sort_values("total_gain", ascending=False).drop_duplicates(keys)
    learners = runs[~runs["policy"].map(lambda p: _is_offline(p) or p in _STATIC_NAMES)]
    pairs = learners.merge(bench[[*keys, "run_id"]], on=keys, suffixes=("", "_static"))
    gains = {rid: g["gain"].to_numpy() for rid, g in slots.sort_values("slot").groupby("run_id")}
    curves: dict[str, list] = {}
    rows = []
    for _, p in pairs.iterrows():
        g, s = gains.get(p["run_id"]), gains.get(p["run_id_static"])
        if g is None or s is None:
            continue
        n = min(len(g), len(s))
        curve = psi_regret_curve(g[:n], s[:n])
        curves.setdefault(p["label"], []).append(curve)
        rows.append({**{k: p[k] for k in TRACE_KEYS}, "label": p["label"], "slots": n, "regret_per_slot": curve[-1]})
    n = {lab: min(len(c) for c in cs) for lab, cs in curves.items()}
    return benchmark, {lab: np.array([c[: n[lab]] for c in cs]) for lab, cs in curves.items()}, pd.DataFrame(rows)


@dataclass
class Section:
    title: str
    items: list = field(default_factory=list)  # ("figure", stem, caption) | ("note", text) | ("table", Table)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(text)).strip("-").lower() or "x"


def make_report(
    runs: pd.DataFrame, slots: pd.DataFrame, out: Path, title: str = "IDN experiment report", headline_ids=None
) -> Path:
    """Write figures, report.html and report.md into out; returns report.html.
    The headline tables cover the runs in headline_ids (default: all)."""
    runs, slots = _prepare(runs, slots)
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    colors = _colors(_order(runs["label"]))
    sections, regret_rows = [], []

    def save(fig, stem: str) -> None:
        with matplotlib.rc_context({"svg.hashsalt": "idn-report"}):
            fig.savefig(fig_dir / f"{stem}.png", dpi=130)
            fig.savefig(fig_dir / f"{stem}.svg", metadata={"Date": None})

    for (scenario, workload), sub in runs.groupby(["scenario", "workload"], sort=True):
        budget = _reference(sub["budget_scale"], 1.0)
        alpha = _reference(sub.loc[sub["budget_scale"] == budget, "alpha"])
        at_b = sub[sub["budget_scale"] == budget]
        at_a = sub[sub["alpha"] == alpha]
        at_ab = at_b[at_b["alpha"] == alpha]
        benchmark, curves, reg = regret_curves(at_ab, slots)
        _, _, reg_all = regret_curves(sub, slots)
        if len(reg_all):
            regret_rows.append(reg_all.assign(benchmark=benchmark))
        seeds = sub["seed"].nunique()
        fixed = f"alpha = {alpha:g}, budget scale = {budget:g}"
        psi_note = (
            "R(T)/T = (ψ·Σ_{t≤T} G_t(x_s) − Σ_{t≤T} G_t(x_t)) / T with ψ = 1 − 1/e, where x_s is the static allocation of "
            f"the {benchmark} run on the same trace (same scenario, workload, seed, alpha, budget). x* is chosen for the "
            "whole horizon, not re-optimized for each prefix T (early values compare against an allocation that "
            "knew the future)."
            + ("" if benchmark == "optimal" else f" No 'optimal' run: {benchmark} stands in for the best static allocation, which it may fall short of.")
        ) if benchmark else ""  # fmt: skip
        specs = [
            ("gain-over-time", lambda: plots.gain_over_time(at_ab, slots, colors),
             f"Gain and normalized gain per slot at {fixed}: mean over {seeds} seed(s), band: 95% interval over seeds; "
             "cloud-only (gain 0 by definition) is left out, and the lower panel's axis starts near the lowest policy."),
            ("latency-accuracy", lambda: plots.tradeoff(at_b, colors),
             f"Latency-accuracy trade-off as alpha varies (budget scale = {budget:g}); mean over seeds, points in alpha order."),
            ("gain-vs-budget", lambda: plots.gain_vs_budget(at_a, colors),
             f"Normalized gain against the budget scale (alpha = {alpha:g}); error bars: 95% interval over seeds."),
            ("model-loads", lambda: plots.churn(at_a, colors),
             f"Model loads (churn) over the whole run per policy (alpha = {alpha:g}); error bars: 95% interval over seeds."),
            ("psi-regret", lambda: plots.psi_regret(curves, benchmark or "-", colors),
             f"Time-averaged ψ-regret against T at {fixed}; band: 95% interval over seeds. {psi_note}"),
            ("bound-fraction", lambda: plots.bound_fraction(at_ab, colors),
             f"Total gain as a fraction of the LP bounds at {fixed}: the static bound (best static fractional allocation; "
             "a dynamic policy may exceed it) and the per-slot bound (bounds every policy); error bars: 95% interval over seeds; "
             "cloud-only (0) left out, the axis starts near the lowest bar."),
            ("served-per-tier", lambda: plots.served_tiers(at_b, slots, colors),
             f"Where requests are served: fraction per tier (budget scale = {budget:g}), pooled over seeds and slots."),
        ]  # fmt: skip
        if benchmark is None:
            specs[4] = (specs[4][0], lambda: _raise(f"no static benchmark run ({', '.join(STATIC_BENCHMARKS)})"), "")
        sec = Section(f"{scenario} / {workload}")
        for name, draw, caption in specs:
            stem = f"{name}_{_slug(scenario)}_{_slug(workload)}"
            try:
                fig = draw()
            except plots.Skip as skip:
                sec.items.append(("note", f"{name.replace('-', ' ')}: skipped, {skip}."))
                continue
            fig.suptitle(f"{scenario} / {workload}", fontsize=10)
            save(fig, stem)
            sec.items.append(("figure", stem, caption))
        sections.append(sec)

    tables = [summary_table(runs), ranking_table(runs)]
    if regret_rows:
        tables.append(regret_table(pd.concat(regret_rows, ignore_index=True)))
    meta = (
        f"{len(runs)} runs: {runs['scenario'].nunique()} scenario(s), {runs['workload'].nunique()} workload(s), "
        f"{runs['seed'].nunique()} seed(s), alpha in {{{', '.join(f'{a:g}' for a in sorted(runs['alpha'].unique()))}}}, "
        f"budget scale in {{{', '.join(f'{b:g}' for b in sorted(runs['budget_scale'].unique()))}}}; "
        f"policies: {', '.join(colors)}."
    )
    headline = headline_tables(runs if headline_ids is None else runs[runs["run_id"].isin(set(headline_ids))])
    (out / "report.md").write_text(_markdown(title, meta, sections, tables, headline), encoding="utf-8")
    page = out / "report.html"
    page.write_text(_html(title, meta, sections, tables, fig_dir, headline), encoding="utf-8")
    return page


def _raise(reason: str):
    raise plots.Skip(reason)


def _markdown(title, meta, sections, tables, headline=()) -> str:
    lines = [f"# {title}", "", meta, ""]
    for table in headline:
        lines += [table.to_markdown(), ""]
    for sec in sections:
        lines += [f"## {sec.title}", ""]
        for item in sec.items:
            if item[0] == "figure":
                _, stem, caption = item
                lines += [f"![{stem}](figures/{stem}.png)", "", f"*{_md(caption)}* ([SVG](figures/{stem}.svg))", ""]
            else:
                lines += [f"> {_md(item[1])}", ""]
    lines += ["## Tables", ""]
    for table in tables:
        lines += [table.to_markdown(), ""]
    return "\n".join(lines)


def _md(text: str) -> str:
    """Text with Markdown's emphasis and link characters escaped."""
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #444; }
.note { color: #8a5a00; font-style: italic; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 8px; } th { background: #f3f3f3; } td.num { text-align: right; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
"""


def _html(title, meta, sections, tables, fig_dir: Path, headline=()) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>", f"<p>{e(meta)}</p>",
    ]  # fmt: skip
    parts += [t.to_html() for t in headline]
    for sec in sections:
        parts.append(f"<h2>{e(sec.title)}</h2>")
        for item in sec.items:
            if item[0] == "figure":
                _, stem, caption = item
                data = base64.b64encode((fig_dir / f"{stem}.png").read_bytes()).decode("ascii")
                parts.append(
                    f'<figure id="{e(stem)}"><img src="data:image/png;base64,{data}" alt="{e(stem)}">'
                    f"<figcaption>{e(caption)}</figcaption></figure>"
                )
            else:
                parts.append(f'<p class="note">{e(item[1])}</p>')
    parts.append("<h2>Tables</h2>")
    parts += [t.to_html() for t in tables]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def report_dir(results_dir: Path, out: Path | None = None, skipped: list[str] | None = None) -> Path:
    """``idn report DIR``: the report of a sweep's result store, in out
    (default DIR/report); returns the path of report.html. Unreadable result
    files are left out and named in skipped (a list), or raise ValueError."""
    from .store import load_runs, load_slots

    results_dir = Path(results_dir)
    extra = {} if skipped is None else {"skipped": skipped}
    runs = load_runs(results_dir, **extra)
    if runs is None or len(runs) == 0:
        raise ValueError(f"no finished runs in {results_dir}")
    slots = load_slots(results_dir, **extra)
    if skipped:  # a run whose runs or slots file is unreadable is reported without it
        both = set(runs["run_id"]) & (set(slots["run_id"]) if len(slots) else set())
        runs = runs[runs["run_id"].isin(both)].reset_index(drop=True)
        slots = slots[slots["run_id"].isin(both)].reset_index(drop=True) if len(slots) else slots
        if len(runs) == 0:
            raise ValueError(f"no readable finished runs in {results_dir}")
    return make_report(runs, slots, results_dir / "report" if out is None else Path(out))
