"""Sub-commands for experiments at scale (sweeps, reports, the paper's study);
registered into the main parser by idn.cli."""

from __future__ import annotations


def add_commands(sub) -> None:
    """Add the experiment sub-commands to the `idn` parser's subparsers."""
