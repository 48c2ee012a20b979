"""The ``idn`` command line. Each sub-command is a thin shell over the
library; user mistakes end as one line on stderr and exit status 2. The
sub-commands live in :mod:`.sim` (the simulator), :mod:`.experiments`
(sweeps, reports, the paper's study) and :mod:`.live` (the live IDN); what
they share in :mod:`.common`."""

from __future__ import annotations

import argparse
import sys

from .._version import __version__
from .common import Parser, UserError

# the numeric flags' sane ranges (name, low, high), checked after parsing, whatever the sub-command
_FLAG_RANGES = (("slots", 1, 10**9), ("seed", 0, 2**63 - 1), ("checkpoint_every", 0, 10**9), ("jobs", 1, 4096))


def _check_flags(args) -> None:
    for name, lo, hi in _FLAG_RANGES:
        v = getattr(args, name, None)
        if v is not None and not lo <= v <= hi:
            raise UserError(f"--{name.replace('_', '-')}: must be an integer from {lo} to {hi:,}, got {v}")
    if args.memory_limit is not None:
        from ..limits import set_limit

        set_limit(args.memory_limit)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="idn", description="Inference Delivery Networks: model, policies, experiments.")
    p.add_argument("--version", action="version", version=f"idn {__version__}")
    p.add_argument("--memory-limit", type=float, metavar="GB", help="refuse inputs estimated to need more memory (default: half the RAM)")
    sub = p.add_subparsers(dest="command", required=True)

    from . import experiments, live, sim

    sim.add_commands(sub)  # idn validate/evaluate/run/bound/demo/trace
    experiments.add_commands(sub)
    live.add_commands(sub)  # idn models/serve/load
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check_flags(args)
        return args.func(args)
    except UserError as exc:
        print(f"idn: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # the library's one-line input errors
        print(f"idn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("idn: interrupted", file=sys.stderr)
        return 130
