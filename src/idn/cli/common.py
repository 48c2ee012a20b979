"""What every ``idn`` sub-command shares: the one-line user error, reading a
scenario, a trace and ``--param`` values, and argparse with one-line errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

BOUND_CHOICES = ("auto", "lp", "fast", "none")  # idn.upper_bounds.BOUND_METHODS (not imported: keeps --help fast)
BOUND_HELP = "upper bounds: lp (HiGHS), fast (Lagrangian, no solver), auto (lp while small), none"


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""


def open_scenario(path: str):
    from ..model.scenario import ScenarioError, load_default_scenario, load_scenario

    try:
        return load_default_scenario() if path == "default" else load_scenario(path)
    except ScenarioError as exc:
        msgs = exc.errors
        if len(msgs) == 1 and msgs[0].startswith(f"{path}:"):  # a file-level problem names the file already
            raise UserError(msgs[0]) from None
        raise UserError(
            f"{path}: {msgs[0]}" if len(msgs) == 1 else f"{path}: {len(msgs)} problems:\n  " + "\n  ".join(msgs)
        ) from None
    except FileNotFoundError:
        raise UserError(f"scenario file not found: {path}") from None


def open_trace(path: str):
    from ..workloads import read_trace

    if not Path(path).exists():
        raise UserError(f"trace file not found: {path}")
    return read_trace(path)


def parse_params(items: list[str] | None) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--param {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other input error
    (sub-parsers inherit it). ``epilog_from``: a function giving the epilog,
    called only when help is printed (listing the policies imports them all,
    which every other command should not pay for)."""

    def __init__(self, *args, epilog_from=None, **kwargs):
        if epilog_from is not None:
            kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.epilog_from = epilog_from

    def format_help(self):
        if self.epilog_from is not None and self.epilog is None:
            self.epilog = self.epilog_from()
        return super().format_help()

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def policies_epilog(live: tuple[str, ...] = ()) -> str:
    """The built-in policies, one line each: name, what it knows, what it does
    (``live``: the names that run live on every node, marked so)."""
    from ..policies.registry import describe_policies

    rows = describe_policies()
    width = max(len(name) for name, *_ in rows)
    lines = ["policies (--policy NAME; also package.module:ClassName):"]
    for name, knows, summary in rows:
        mark = ", live on every node" if name in live else ""
        lines.append(f"  {name:<{width}}  {knows}{mark}: {summary}")
    return "\n".join(lines)
