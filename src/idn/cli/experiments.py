"""Sub-commands for experiments at scale (sweeps, reports, the paper's study);
registered into the main parser by idn.cli."""

from __future__ import annotations

import sys


def cmd_sweep(args) -> int:
    from ..experiments.sweep import SweepError, format_summary, run_sweep

    try:
        summary = run_sweep(
            args.experiment, args.out, jobs=args.jobs, backend=args.backend, progress=not args.quiet,
            ray_address=args.ray_address,
        )  # fmt: skip
    except SweepError as exc:
        print(f"idn: error: {exc}", file=sys.stderr)
        print("idn: finished runs are stored; rerun the same command to resume", file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from ..experiments.report import report_dir

    skipped: list[str] = []
    html = report_dir(Path(args.results), Path(args.out) if args.out else None, skipped)
    for line in skipped:
        print(f"idn: warning: {line}; reported without it", file=sys.stderr)
    print(f"report: {html}")
    return 0


def cmd_reproduce(args) -> int:
    from ..experiments.reproduce import reproduce

    html = reproduce(
        args.study, args.out, quick=args.quick, jobs=args.jobs, backend=args.backend, progress=not args.quiet,
        ray_address=args.ray_address, only=[x for x in (args.only or "").split(",") if x] or None,
        servegen=args.servegen,
    )  # fmt: skip
    print(f"report: {html}")
    return 0


def add_commands(sub) -> None:
    """Add the experiment sub-commands to the `idn` parser's subparsers."""
    s = sub.add_parser("sweep", help="run every combination of an experiment file; rerun to resume")
    s.add_argument("experiment", help="experiment file (YAML or JSON)")
    s.add_argument("--out", required=True, help="result directory (runs/, slots/, bounds/ in Parquet)")
    s.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel runs (default 1: in-process)")
    s.add_argument("--backend", choices=["local", "ray"], default="local", help="process pool, or a Ray cluster")
    s.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (default: start a local one)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("report", help="figures and an HTML report from a sweep's results")
    s.add_argument("results", help="a sweep's result directory")
    s.add_argument("--out", help="where to write the report (default RESULTS/report)")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("reproduce", help="the paper's kind of study end to end, then its report")
    s.add_argument("study", choices=["paper"])
    s.add_argument("--out", required=True, help="output directory (one result store per sweep, and report/)")
    s.add_argument("--quick", action="store_true", help="a reduced version that runs in a few minutes")
    s.add_argument("--only", metavar="SWEEPS", help="comma-separated sweeps of the study to run (default: all); 'real': every real-demand sweep")
    s.add_argument("--servegen", metavar="DIR", help="the ServeGen traces (a directory of *-trace.csv) for the real-demand sweeps (default: $IDN_SERVEGEN)")
    s.add_argument("--jobs", type=int, default=None, metavar="N", help="parallel runs (default: all cores)")
    s.add_argument("--backend", choices=["local", "ray"], default="local")
    s.add_argument("--ray-address", metavar="ADDR")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_reproduce)
