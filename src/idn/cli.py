"""The ``idn`` command line. Each sub-command is a thin shell over the
library; user mistakes end as one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path



BOUND_CHOICES = ("auto", "lp", "fast", "none")  # idn.policies.bounds.BOUND_METHODS (not imported: keeps --help fast)
BOUND_HELP = "upper bounds: lp (HiGHS), fast (Lagrangian, no solver), auto (lp while small), none"


class UserError(Exception):
    """A mistake in the user's input: printed as one line, exit status 2."""


def _load_scenario(path: str):
    from .model.scenario import ScenarioError, load_default_scenario, load_scenario

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


def _read_trace(path: str):
    from .workloads import read_trace

    if not Path(path).exists():
        raise UserError(f"trace file not found: {path}")
    return read_trace(path)


# ---------------------------------------------------------------- validate
def cmd_validate(args) -> int:
    from .experiments.summaries import scenario_summary

    idn = _load_scenario(args.scenario)
    print(scenario_summary(idn))
    return 0


# ---------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from .policies.base import Fixed
    from .sim.inputs import count_matrix, request_types_for
    from .sim.loop import run_policy

    idn = _load_scenario(args.scenario)
    from .policies.params import id_lists
    from .textfiles import FileError, load_data

    if not Path(args.allocation).exists():
        raise UserError(f"allocation file not found: {args.allocation}")
    try:  # binary bytes, duplicate keys, deep nesting, syntax: one line naming the file
        mapping = load_data(args.allocation, "allocation", json_only=True)
    except FileError as exc:
        raise UserError(str(exc)) from None
    if id_lists(mapping) is not None:
        raise UserError(f"{args.allocation}: expected an object mapping node id to a list of model ids")
    try:
        idn.allocation_from_ids(mapping)  # unknown ids and budgets fail here, before the trace is read
    except ValueError as exc:
        raise UserError(f"{args.allocation}: {exc}") from None
    trace = _read_trace(args.requests)
    rt = request_types_for(idn, trace)
    result = run_policy(rt, Fixed(allocation=mapping), count_matrix(rt, trace))
    keys = ["requests", "gain", "cost", "normalized_gain", "mean_latency_ms", "mean_accuracy"]
    rows = result.slots[["slot", *keys]].to_dict(orient="records")
    summary = result.summary()
    total = {
        "requests": float(result.slots["requests"].sum()),
        "gain": summary["total_gain"],
        "cost": float(result.slots["cost"].sum()),
        **{k: summary[k] for k in ("normalized_gain", "mean_latency_ms", "mean_accuracy")},
    }
    if args.json:
        print(json.dumps({"slots": rows, "total": total}, indent=2))
    else:
        for k, v in total.items():
            print(f"{k:>16}: {v:.6g}")
    return 0


# ---------------------------------------------------------------- run
def cmd_run(args) -> int:
    from .experiments.single import run_to_dir

    idn = _load_scenario(args.scenario)
    trace = _read_trace(args.trace) if args.trace else None
    params = _parse_params(args.param)
    summary = run_to_dir(
        idn, args.policy, Path(args.out), trace=trace, slots=args.slots, seed=args.seed, params=params,
        checkpoint_every=args.checkpoint_every, with_bound=not args.no_bound, progress=not args.quiet,
        restart=args.restart, bound="none" if args.no_bound else args.bound,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


def _parse_params(items: list[str] | None) -> dict:
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


# ---------------------------------------------------------------- bound
def cmd_bound(args) -> int:
    from .experiments.bound_run import compute_bounds
    from .sim.inputs import count_matrix, default_trace, request_types_for

    if args.bound == "none":
        raise UserError("idn bound: --bound none computes nothing; choose auto, lp or fast")
    idn = _load_scenario(args.scenario)
    trace = _read_trace(args.trace) if args.trace else default_trace(idn, args.slots, args.seed)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    result = compute_bounds(rt, counts, args.bound, progress=not args.quiet)
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:>20}: {fmt(v)}" for k, v in result.items()))
    return 0


# ---------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from .experiments.single import demo

    demo(slots=args.slots, seed=args.seed, scenario=_load_scenario(args.scenario) if args.scenario else None)
    return 0


# ---------------------------------------------------------------- trace
def cmd_trace_generate(args) -> int:
    from .sim.inputs import default_trace
    from .workloads import write_trace

    idn = _load_scenario(args.scenario)
    spec = dict(idn.workload or {"kind": "stationary"})
    if args.kind:
        spec = {"kind": args.kind}
    spec.update(_parse_params(args.param))
    try:
        trace = default_trace(idn, args.slots, args.seed, spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    write_trace(trace, args.out)
    print(f"wrote {args.out}: {len(trace)} rows, {args.slots} slots, {int(trace['count'].sum())} requests")
    return 0


def cmd_trace_show(args) -> int:
    from .workloads import format_summary, summarize

    print(format_summary(summarize(_read_trace(args.file))))
    return 0


# ---------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, like every other input error (sub-parsers inherit it)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


# the numeric flags' sane ranges (name, low, high), checked after parsing, whatever the sub-command
_FLAG_RANGES = (("slots", 1, 10**9), ("seed", 0, 2**63 - 1), ("checkpoint_every", 0, 10**9), ("jobs", 1, 4096))


def _check_flags(args) -> None:
    for name, lo, hi in _FLAG_RANGES:
        v = getattr(args, name, None)
        if v is not None and not lo <= v <= hi:
            raise UserError(f"--{name.replace('_', '-')}: must be an integer from {lo} to {hi:,}, got {v}")
    if args.memory_limit is not None:
        from .limits import set_limit

        set_limit(args.memory_limit)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="idn", description="Inference Delivery Networks: model, policies, experiments.")
    p.add_argument("--memory-limit", type=float, metavar="GB", help="refuse inputs estimated to need more memory (default: half the RAM)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("validate", help="check a scenario file and summarize it")
    s.add_argument("scenario", help="scenario file (YAML or JSON), or 'default'")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("evaluate", help="serve a request table under a fixed allocation")
    s.add_argument("scenario")
    s.add_argument("--allocation", required=True, help="JSON: node id -> list of model ids")
    s.add_argument("--requests", required=True, help="CSV/Parquet with slot,source,task,count")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("run", help="run one policy slot by slot")
    s.add_argument("scenario")
    s.add_argument("--policy", required=True, help="a built-in name, an idn.policies entry point, or package.module:ClassName")
    s.add_argument("--trace", help="CSV/Parquet with slot,source,task,count")
    s.add_argument("--slots", type=int, default=500, help="slots of the scenario's workload when no trace is given")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="policy parameter (repeatable)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--checkpoint-every", type=int, default=0, metavar="K", help="save state every K slots; rerun to resume")
    s.add_argument("--restart", action="store_true", help="ignore and remove a checkpoint left in --out: start over")
    s.add_argument("--bound", choices=BOUND_CHOICES, default="auto", help=BOUND_HELP)
    s.add_argument("--no-bound", action="store_true", help="skip the bounds (same as --bound none)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("bound", help="LP upper bounds on the total gain of a trace")
    s.add_argument("scenario")
    s.add_argument("--trace")
    s.add_argument("--slots", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bound", choices=BOUND_CHOICES, default="auto", help=BOUND_HELP)
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_bound)

    s = sub.add_parser("demo", help="run INFIDA and the baselines on the built-in scenario")
    s.add_argument("--scenario", help="another scenario instead of the built-in one")
    s.add_argument("--slots", type=int, default=300)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_demo)

    t = sub.add_parser("trace", help="generate or inspect request traces")
    tsub = t.add_subparsers(dest="trace_command", required=True)
    s = tsub.add_parser("generate", help="write a trace from a workload generator")
    s.add_argument("scenario", help="scenario (for its sources and tasks), or 'default'")
    s.add_argument("--kind", help="workload kind (default: the scenario's workload)")
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="workload parameter (repeatable)")
    s.add_argument("--slots", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="output .csv or .parquet")
    s.set_defaults(func=cmd_trace_generate)
    s = tsub.add_parser("show", help="summarize a trace")
    s.add_argument("file")
    s.set_defaults(func=cmd_trace_show)

    from .experiments import cli_ext

    cli_ext.add_commands(sub)
    __import__("idn.runtime.cli", fromlist=["add_commands"]).add_commands(sub)  # idn models/serve/load
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


if __name__ == "__main__":
    sys.exit(main())
