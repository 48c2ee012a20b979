"""The simulator's sub-commands: ``idn validate``, ``evaluate``, ``run``,
``bound``, ``demo`` and ``trace``; registered into the main parser by
:mod:`idn.cli`."""

from __future__ import annotations

import json
from pathlib import Path

from ..output_names import with_aliases
from .common import BOUND_CHOICES, BOUND_HELP, UserError, open_scenario, open_trace, parse_params, policies_epilog


# ---------------------------------------------------------------- validate
def cmd_validate(args) -> int:
    from ..experiments.summaries import scenario_summary

    idn = open_scenario(args.scenario)
    print(scenario_summary(idn))
    return 0


# ---------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from ..policies.simple import Fixed
    from ..sim.inputs import count_matrix, request_types_for
    from ..sim.loop import run_policy

    idn = open_scenario(args.scenario)
    from ..policies.params import id_lists
    from ..textfiles import FileError, load_data

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
    trace = open_trace(args.requests)
    rt = request_types_for(idn, trace)
    result = run_policy(rt, Fixed(allocation=mapping), count_matrix(rt, trace))
    keys = ["requests", "gain", "cost", "normalized_gain", "mean_latency_ms", "mean_accuracy"]
    rows = result.slots[["slot", *keys]].to_dict(orient="records")
    summary = result.summary()
    total = {
        "total_requests": float(result.slots["requests"].sum()),
        "total_gain": summary["total_gain"],
        "total_cost": float(result.slots["cost"].sum()),
        **{k: summary[k] for k in ("normalized_gain", "mean_latency_ms", "mean_accuracy")},
    }
    if args.json:
        total = with_aliases(total, {"requests": "total_requests", "gain": "total_gain", "cost": "total_cost"})
        print(json.dumps({"slots": rows, "total": total}, indent=2))
    else:
        for k, v in total.items():
            print(f"{k:>16}: {v:.6g}")
    return 0


# ---------------------------------------------------------------- run
def cmd_run(args) -> int:
    from ..experiments.single import run_to_dir

    idn = open_scenario(args.scenario)
    trace = open_trace(args.trace) if args.trace else None
    params = parse_params(args.param)
    summary = run_to_dir(
        idn, args.policy, Path(args.out), trace=trace, slots=args.slots, seed=args.seed, params=params,
        checkpoint_every=args.checkpoint_every, with_bound=not args.no_bound, progress=not args.quiet,
        restart=args.restart, bound="none" if args.no_bound else args.bound,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return 0


# ---------------------------------------------------------------- bound
def cmd_bound(args) -> int:
    from ..experiments.bound_run import compute_bounds
    from ..sim.inputs import count_matrix, default_trace, request_types_for

    if args.bound == "none":
        raise UserError("idn bound: --bound none computes nothing; choose auto, lp or fast")
    idn = open_scenario(args.scenario)
    trace = open_trace(args.trace) if args.trace else default_trace(idn, args.slots, args.seed)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    result = compute_bounds(rt, counts, args.bound, progress=not args.quiet)
    # the names summary.json gives the same numbers (method and seconds: aliases until 0.3)
    result["bound_method"], result["bound_seconds"] = result.pop("method"), result.pop("seconds")
    if args.json:
        result = with_aliases(result, {"method": "bound_method", "seconds": "bound_seconds"})
    fmt = lambda v: f"{v:.6g}" if isinstance(v, float) else str(v)  # noqa: E731
    print(json.dumps(result, indent=2) if args.json else "\n".join(f"{k:>20}: {fmt(v)}" for k, v in result.items()))
    return 0


# ---------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from ..experiments.single import demo

    demo(slots=args.slots, seed=args.seed, scenario=open_scenario(args.scenario) if args.scenario else None)
    return 0


# ---------------------------------------------------------------- trace
def cmd_trace_generate(args) -> int:
    from ..sim.inputs import default_trace
    from ..workloads import write_trace

    idn = open_scenario(args.scenario)
    spec = dict(idn.workload or {"kind": "stationary"})
    if args.kind:
        spec = {"kind": args.kind}
    spec.update(parse_params(args.param))
    try:
        trace = default_trace(idn, args.slots, args.seed, spec)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    write_trace(trace, args.out)
    print(f"wrote {args.out}: {len(trace)} rows, {args.slots} slots, {int(trace['count'].sum())} requests")
    return 0


def cmd_trace_show(args) -> int:
    from ..workloads import format_summary, summarize

    print(format_summary(summarize(open_trace(args.file))))
    return 0


def add_commands(sub) -> None:
    s = sub.add_parser("validate", help="check a scenario file and summarize it")
    s.add_argument("scenario", help="scenario file (YAML or JSON), or 'default'")
    s.set_defaults(func=cmd_validate)

    s = sub.add_parser("evaluate", help="serve a request table under a fixed allocation")
    s.add_argument("scenario")
    s.add_argument("--allocation", required=True, help="JSON: node id -> list of model ids")
    s.add_argument("--requests", required=True, help="CSV/Parquet with slot,source,task,count")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("run", help="run one policy slot by slot", epilog_from=policies_epilog)
    s.add_argument("scenario")
    s.add_argument("--policy", required=True, help="a built-in name (listed below), an idn.policies entry point, or package.module:ClassName")
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
