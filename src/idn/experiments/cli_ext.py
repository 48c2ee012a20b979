"""Sub-commands for experiments at scale (sweeps, reports, the paper's study);
registered into the main parser by idn.cli."""

from __future__ import annotations

import sys


def cmd_sweep(args) -> int:
    from .sweep import SweepError, format_summary, run_sweep

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
