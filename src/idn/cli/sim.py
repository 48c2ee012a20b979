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


def cmd_trace_import(args) -> int:
    import time

    from ..workloads import write_trace
    from ..workloads.importers import import_trace, mapping_path, scenario_rate

    idn = open_scenario(args.scenario)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UserError(f"--out: no such directory: {out.parent}")
    result = import_trace(
        args.format, args.path, idn.sources, idn.tasks, scenario_slot_seconds=idn.slot_seconds,
        default_rate=scenario_rate(idn.workload), slot_seconds=args.slot_seconds, seed=args.seed, rate=args.rate,
        scale=not args.no_scale, sample=args.sample, spill=args.spill, start=args.start, slots=args.slots,
        time_column=args.time_column, task_column=args.task_column, source_column=args.source_column,
        task_order=args.task_order, scenario=idn.name,
    )  # fmt: skip
    m = result.mapping
    t0 = time.perf_counter()
    write_trace(result.trace, out)
    mapping_path(out).write_text(json.dumps(m, indent=1) + "\n")
    what = f"{m['files']} files" if "files" in m else f"{m['rows_read']:,} requests read"
    print(f"imported {m['format']} {m['path']}: {m['streams_count']} streams ({what}), {m['slots']} slots of "
          f"{m['slot_seconds']:g} s from {m['start_seconds']:g} s, {m['raw_requests']:,.0f} requests, in {m['seconds']:.2f} s")  # fmt: skip
    print(f"time compression: {m['time_compression']:g}x (one {m['slot_seconds']:g} s slot of the trace is one "
          f"{m['scenario_slot_seconds']:g} s slot of {idn.name})")  # fmt: skip
    if m["rate"] is None:
        print("scale factor: 1 (--no-scale: raw counts)")
    else:
        print(f"scale factor: {m['scale_factor']:.6g} (mean {m['rate']:g} requests per source and slot, {len(m['sources'])} sources)")
    print(f"wrote {out}: {m['rows']:,} rows, {m['requests']:,} requests (in {time.perf_counter() - t0:.2f} s); "
          f"mapping in {mapping_path(out)}")  # fmt: skip
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
    s = tsub.add_parser(
        "import", help="a real trace (a ServeGen directory, a request log) as a trace of a scenario",
        description="Import a real trace for a scenario's sources and tasks; the mapping (which stream went to which "
        "task and source, and why; the scale factor; the time compression) is written beside --out as "
        "<stem>.mapping.json. docs/workloads.md has the rules.",
    )  # fmt: skip
    s.add_argument("format", choices=["servegen", "requests"], help="servegen: a directory of *-trace.csv (searched recursively); requests: a per-request log, CSV or Parquet")
    s.add_argument("path")
    s.add_argument("--scenario", required=True, help="scenario (for its sources, tasks, slot length and rate), or 'default'")
    s.add_argument("--out", required=True, help="output .csv or .parquet")
    s.add_argument("--slot-seconds", type=float, metavar="S", help="seconds of the trace per slot (servegen: a multiple of 600, or a divisor with --sample; default 600; requests: default the scenario's slot)")
    s.add_argument("--seed", type=int, default=0, help="draws the mapping (task order, home sources, spill) and sampled arrivals")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--rate", type=float, metavar="R", help="mean requests per source and slot after scaling (default: the scenario's workload rate)")
    g.add_argument("--no-scale", action="store_true", help="keep the raw counts")
    s.add_argument("--sample", action="store_true", help="servegen: draw arrivals from each window's fitted inter-arrival law (for slots shorter than a window)")
    s.add_argument("--spill", type=float, default=0.5, metavar="F", help="share of a client's requests entering at sources other than its home (default 0.5)")
    s.add_argument("--start", type=float, default=0.0, metavar="SECONDS", help="skip the trace's first SECONDS (a multiple of the window / slot)")
    s.add_argument("--slots", type=int, help="import this many slots (default: all)")
    s.add_argument("--task-order", choices=["random", "given"], default="random", help="tasks streams are ranked onto: a seeded permutation (default) or the scenario's order")
    s.add_argument("--time-column", help="requests: the time column (seconds, or timestamps pandas parses)")
    s.add_argument("--task-column", help="requests: the stream column (a model, function or app id)")
    s.add_argument("--source-column", help="requests: the client (or, if it holds the scenario's source ids, source) column")
    s.set_defaults(func=cmd_trace_import)
    s = tsub.add_parser("show", help="summarize a trace")
    s.add_argument("file")
    s.set_defaults(func=cmd_trace_show)
