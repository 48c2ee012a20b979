"""``idn reproduce paper``: the paper's kind of study end to end, from the
experiment files shipped in ``idn/configs/paper/`` (an alpha sweep and a
budget sweep on a tiered tree and the GEANT backbone, a stationary and a
shifting workload, five policies, LP bounds; then the study where adapting
matters: GEANT and the 1111-node tree with 40 tasks, tight budgets,
popularity reshuffled every 10, 50 or 250 slots, a diurnal day (rate and
eight parts with their own popularity), every
policy, five seeds, bounds; and the real-demand study, the ServeGen traces
on both topologies (``real-*``, run when the data is given: ``--servegen
DIR`` or IDN_SERVEGEN), then one report over all of them, which opens
with the headline table and ends with the adversarial sequence.

Each sweep has its own result directory under OUT, so an interrupted study
resumes where it stopped (finished runs are skipped); runs shared by both
sweeps (same parameters, same run id) appear once in the report.
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import resources
from pathlib import Path

import pandas as pd

STUDIES = {
    "paper": {
        "full": ["alpha.yaml", "budget.yaml", "adapt-geant.yaml", "adapt-tree.yaml", "adapt-tree-long.yaml",
                 "adapt-periodic.yaml", "real-geant.yaml", "real-geant-hourly.yaml", "real-fine.yaml", "real-tree-hourly.yaml",
                 "real-tree.yaml"],
        "quick": ["quick-alpha.yaml", "quick-budget.yaml", "quick-adapt.yaml"],
    }
}


REAL = "real"  # the real-demand sweeps: real-*.yaml, on the ServeGen traces (not shipped)


def _selects(name: str, stem: str) -> bool:
    """--only NAME: the sweep NAME, or the group of sweeps NAME-* (real: every real-demand sweep)."""
    return stem == name or (name == REAL and stem.startswith(REAL + "-"))


def config_paths(study: str, quick: bool, only: list[str] | None = None) -> list[Path]:
    """The study's experiment files; with only, just the sweeps of those names
    (``real`` names every real-demand sweep)."""
    if study not in STUDIES:
        raise ValueError(f"unknown study {study!r} (known: {', '.join(STUDIES)})")
    root = resources.files("idn") / "configs" / study
    paths = [Path(str(root / name)) for name in STUDIES[study]["quick" if quick else "full"]]
    if only:
        unknown = sorted(name for name in set(only) if not any(_selects(name, p.stem) for p in paths))
        if unknown:
            known = [p.stem for p in paths] + ([REAL] if any(p.stem.startswith(REAL + "-") for p in paths) else [])
            raise ValueError(f"--only: no sweep {unknown[0]!r} in this study (known: {', '.join(known)})")
        paths = [p for p in paths if any(_selects(name, p.stem) for name in only)]
    return paths


def is_real(path: Path) -> bool:
    return path.stem.startswith(REAL + "-")


def servegen_root(servegen: str | Path | None) -> str | None:
    """The ServeGen directory: ``servegen``, else IDN_SERVEGEN; checked (one
    line when it is not a ServeGen directory)."""
    from ..workloads.importers.servegen import default_root, stream_files

    root = str(servegen) if servegen else default_root()
    if root:
        stream_files(root)  # raises: no such directory, or no *-trace.csv in it
    return root


def reproduce(
    study: str, out: str | Path, quick: bool = False, jobs: int | None = None, backend: str = "local",
    progress: bool = True, ray_address: str | None = None, only: list[str] | None = None,
    servegen: str | Path | None = None,
) -> Path:  # fmt: skip
    """Run the study's sweeps into out/<sweep>, then the report into out/report.
    Returns the report's HTML path. The real-demand sweeps need the ServeGen
    traces (``servegen``, else IDN_SERVEGEN): asked for by ``only`` without
    them is an error; in the whole study they are left out, with a note."""
    from .report import make_report
    from .store import load_runs, load_slots
    from .sweep import format_summary, run_sweep

    out = Path(out)
    jobs = jobs or max(1, os.cpu_count() or 1)
    configs = config_paths(study, quick, only)
    real = [p.stem for p in configs if is_real(p)]
    root = servegen_root(servegen) if real else None
    if real and root is None:
        if only:
            raise ValueError(
                f"the real-demand sweeps ({', '.join(real)}) need the ServeGen traces, which idn does not ship: "
                "pass --servegen DIR (a directory of *-trace.csv, e.g. ServeGen's data/language) or set IDN_SERVEGEN=DIR"
            )
        print(f"idn: note: the real-demand sweeps ({', '.join(real)}) are left out: no ServeGen traces (--servegen DIR or IDN_SERVEGEN)")
        configs = [p for p in configs if not is_real(p)]
    if root is not None:
        os.environ["IDN_SERVEGEN"] = str(Path(root).resolve())  # the workers (spawned, or Ray's) read it from here
    t0 = time.perf_counter()
    dirs = []
    for config in configs:
        target = out / config.stem
        summary = run_sweep(config, target, jobs=jobs, backend=backend, progress=progress, ray_address=ray_address)
        if progress:
            print(format_summary(summary))
        dirs.append(target)
    runs = pd.concat([load_runs(d) for d in dirs], ignore_index=True).drop_duplicates("run_id")
    slots = pd.concat([load_slots(d) for d in dirs], ignore_index=True).drop_duplicates(["run_id", "slot"])
    sweep_seconds = time.perf_counter() - t0
    title = f"idn reproduce {study}" + (" --quick" if quick else "")
    # the headline is the study where adapting matters (adapt-*) and the real demand (real-*), when they ran
    adapt = [load_runs(d) for d in dirs if "adapt" in d.name or is_real(d)]
    headline_ids = set(pd.concat(adapt)["run_id"]) if adapt else None
    html = make_report(runs.reset_index(drop=True), slots.reset_index(drop=True), out / "report", title=title,
                       headline_ids=headline_ids)  # fmt: skip
    if root is not None and any(is_real(d) for d in dirs):
        from .real_demand import add_real_section

        add_real_section(out / "report", pd.concat([load_runs(d) for d in dirs if is_real(d)], ignore_index=True), root)
    add_adversarial_section(out / "report", horizons=(100, 400) if quick else (100, 400, 1600))
    wall = time.perf_counter() - t0
    meta = {
        "command": f"idn reproduce {study} --out {out}" + (" --quick" if quick else "") + f" --jobs {jobs}"
        + (f" --only {','.join(only)}" if only else "") + (f" --servegen {root}" if root is not None else ""),
        "configs": [str(p.name) for p in configs],
        "servegen": str(root) if root is not None else None,
        "runs": int(len(runs)),
        "wall_seconds": round(wall, 1),
        "sweep_seconds": round(sweep_seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    (out / "reproduce.json").write_text(json.dumps(meta, indent=2) + "\n")
    return html


def add_adversarial_section(report_dir: Path, horizons=(100, 400, 1600)) -> None:
    """The adversarial figure (:mod:`.adversarial`) and its table, appended to
    report.html and report.md: the half of the paper's claim that no
    stochastic workload shows."""
    import base64

    from .adversarial import plot_regret, regret_table

    table = regret_table(horizons=horizons)
    stem = report_dir / "figures" / "adversarial-regret"
    plot_regret(table, stem)
    mean = table.groupby(["policy", "T"], sort=False)[["psi_regret_per_slot", "regret_per_slot"]].mean().reset_index()
    text = (
        "One access node with room for one of two equal models, one per task; every slot all requests go to the "
        "task whose model online-greedy (window 10) does not hold. Regret per slot, as a fraction of one slot's "
        "largest gain, against the best static allocation; INFIDA's figures are means over 3 seeds."
    )
    rows = "".join(
        f"<tr><td>{r.policy}</td><td class=\"num\">{r.T}</td><td class=\"num\">{r.psi_regret_per_slot:.4f}</td>"
        f"<td class=\"num\">{r.regret_per_slot:.4f}</td></tr>"
        for r in mean.itertuples()
    )
    png = base64.b64encode(stem.with_suffix(".png").read_bytes()).decode()
    section = (
        f"<h2>Adversarial sequence</h2><p>{text}</p><img src=\"data:image/png;base64,{png}\" alt=\"adversarial regret\">"
        f"<table><tr><th>policy</th><th>T</th><th>ψ-regret / T</th><th>regret / T</th></tr>{rows}</table>"
    )
    html = report_dir / "report.html"
    page = html.read_text()
    html.write_text(page.replace("</body></html>", section + "</body></html>"))
    md_rows = "\n".join(f"| {r.policy} | {r.T} | {r.psi_regret_per_slot:.4f} | {r.regret_per_slot:.4f} |" for r in mean.itertuples())
    md = report_dir / "report.md"
    md.write_text(
        md.read_text().rstrip("\n") + f"\n\n## Adversarial sequence\n\n{text}\n\n![adversarial regret](figures/adversarial-regret.png)\n\n"
        f"| policy | T | psi-regret / T | regret / T |\n|---|---|---|---|\n{md_rows}\n"
    )
