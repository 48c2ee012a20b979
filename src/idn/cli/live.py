"""Sub-commands of the live IDN (``idn models build``, ``idn serve``,
``idn load``, ``idn dashboard``); registered into the main parser by idn.cli."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path


def _user_error(msg: str) -> int:
    print(f"idn: error: {msg}", file=sys.stderr)
    return 2


def _serve_epilog() -> str:
    from ..runtime.live_policies import LIVE_POLICIES
    from .common import policies_epilog

    return policies_epilog(live=LIVE_POLICIES)


def cmd_models_build(args) -> int:
    from ..runtime.models import build_models, format_table

    warnings.filterwarnings("ignore", message=".*(converge|Maximum iterations).*")
    built = build_models(args.out, seed=args.seed, quick=args.quick)
    print(format_table(built))
    print(f"wrote {args.out}/catalog.csv, {len(built)} models in {args.out}/onnx, held-out data in {args.out}/data, "
          f"scenario {args.out}/live-demo.yaml")  # fmt: skip
    return 0


def _allocation(args, idn, params: dict) -> dict:
    from .common import UserError
    from ..runtime.live_policies import LIVE_POLICIES
    from ..runtime.launcher import allocation_from_policy, first_allocation

    if args.allocation:
        try:
            mapping = json.loads(Path(args.allocation).read_text())
        except FileNotFoundError:
            raise UserError(f"allocation file not found: {args.allocation}") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{args.allocation}: not valid JSON: {exc}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, list) for v in mapping.values()):
            raise UserError(f"{args.allocation}: expected an object mapping node id to a list of model ids")
    elif args.policy in LIVE_POLICIES:
        mapping = first_allocation(idn, args.policy, seed=args.seed, params=params)
    else:
        mapping = allocation_from_policy(idn, args.policy, slots=args.policy_slots, seed=args.seed, params=params)
    idn.allocation_from_ids(mapping)  # unknown ids and budgets fail here
    return mapping


def cmd_serve(args) -> int:
    from .common import UserError, open_scenario, parse_params
    from ..policies.registry import make_policy
    from ..runtime.control import check_control_graph
    from ..runtime.dashboard.process import DashboardProcess
    from ..runtime.live_policies import LIVE_POLICIES, MESSAGING
    from ..runtime.launcher import check_models, read_peers
    from ..runtime.routing import live_request_types

    idn = open_scenario(args.scenario)
    check_models(idn, args.models)
    params = parse_params(args.param)
    try:
        make_policy(args.policy, **params)  # unknown names and bad parameters: one line, before any node starts
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.allocation and args.policy in LIVE_POLICIES:
        raise UserError(f"--allocation fixes the allocation and --policy {args.policy} learns it live: give one of them")
    live = args.policy in LIVE_POLICIES
    if live and args.policy == "infida":
        params = {"rounding": "coupled", **params}  # live, the low-churn rounding is the default
    if live and args.policy in MESSAGING:
        try:
            check_control_graph(live_request_types(idn))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    Cluster, backend = _backend(args, idn)
    mapping = _allocation(args, idn, params)
    peers = read_peers(args.peers) if args.peers else None
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    cluster = Cluster(args.scenario, idn, args.models, mapping, args.run_dir, nodes=nodes, peers=peers,
                      token=args.token, hop_timeout_s=args.hop_timeout, epoch=args.epoch,
                      latency_scale=args.latency_scale, deterministic=args.deterministic,
                      policy={"name": args.policy, "params": params, "seed": args.seed} if live else None,
                      control_hop_timeout_s=args.control_hop_timeout, emulate=not args.no_emulation,
                      max_batch=args.max_batch, max_batch_wait_us=args.max_batch_wait_us, **backend)  # fmt: skip
    dashboard = None if args.no_dashboard else DashboardProcess(args.run_dir, port=args.dashboard_port)
    cluster.start()
    if dashboard is not None:
        print(f"dashboard: {dashboard.start().url}", flush=True)
    try:
        return cluster.run_until_signal(args.ready_timeout)
    except RuntimeError as exc:
        return _user_error(str(exc))
    finally:
        if dashboard is not None:
            dashboard.stop()


def cmd_dashboard(args) -> int:
    import asyncio
    import webbrowser

    from ..runtime.dashboard.collect import read_run_files
    from ..runtime.dashboard.process import DashboardProcess
    from ..runtime.dashboard.server import serve

    read_run_files(args.run_dir)  # a run dir that is not one: one line, before anything listens
    dash = DashboardProcess(args.run_dir, host=args.host, port=args.port)

    def ready():
        print(f"dashboard: {dash.url}", flush=True)
        if args.open:
            webbrowser.open(dash.url)

    asyncio.run(serve(args.run_dir, dash.sock, ready=ready))
    return 0


def _backend(args, idn) -> tuple[type, dict]:
    """The launcher class and its own arguments: local processes, or Ray actors (--backend ray)."""
    from .common import UserError
    from ..runtime.launcher import Cluster

    if args.backend == "local":
        if args.address or args.placement:
            raise UserError("--address and --placement place nodes on a Ray cluster: add --backend ray")
        return Cluster, {}
    if args.nodes or args.peers:
        raise UserError("--backend ray places every node itself: --nodes and --peers are for the local backend")
    from ..runtime.ray_backend import RayCluster
    from ..runtime.ray_placement import read_placement

    placement = read_placement(args.placement, idn) if args.placement else None
    return RayCluster, {"address": args.address, "placement": placement, "start_timeout": args.ready_timeout}


def cmd_load(args) -> int:
    from .common import open_scenario, open_trace
    from ..sim.inputs import check_trace_names, default_trace
    from ..runtime.load import format_report, run_load

    idn = open_scenario(args.scenario)
    if args.trace:
        trace = open_trace(args.trace)
        check_trace_names(idn, trace)
    else:
        trace = default_trace(idn, max(1, int(args.duration / idn.slot_seconds)), args.seed)
    rep = run_load(idn, args.run_dir, trace, rate_scale=args.rate_scale, duration=args.duration,
                   max_requests=args.max_requests, seed=args.seed)  # fmt: skip
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0 if rep["sent"] == rep["answered"] else 1


def add_commands(sub) -> None:
    m = sub.add_parser("models", help="real ONNX models for a live IDN")
    msub = m.add_subparsers(dest="models_command", required=True)
    s = msub.add_parser("build", help="train, export (ONNX) and measure model variants; write a catalog and a demo scenario")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--quick", action="store_true", help="4 smaller variants per task (for tests)")
    s.set_defaults(func=cmd_models_build)

    s = sub.add_parser("serve", help="start the nodes of a scenario as local HTTP servers", epilog_from=_serve_epilog)
    s.add_argument("scenario")
    s.add_argument("--models", required=True, help="a directory made by 'idn models build'")
    s.add_argument("--allocation", help="JSON: node id -> list of model ids (default: --policy's)")
    s.add_argument("--policy", default="static-greedy",
                   help="a policy marked 'live on every node' below learns live on every node (docs/live.md); any other: "
                        "the simulator's allocation after --policy-slots, kept fixed (default static-greedy)")  # fmt: skip
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="policy parameter (repeatable), as in 'idn run'")
    s.add_argument("--deterministic", action="store_true",
                   help="slots end when 'idn load' has sent each slot's requests and ends it, not by the clock")
    s.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for every node to answer")
    s.add_argument("--control-hop-timeout", type=float,
                   help="seconds a node waits per hop for a neighbour's control messages before using its last ones")
    s.add_argument("--policy-slots", type=int, default=30, help="slots of the scenario's workload the policy sees")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--run-dir", default="idn-run", help="where nodes.json, token, serve.json and logs go")
    s.add_argument("--nodes", help="comma-separated node ids to start here (multi-host; needs --peers)")
    s.add_argument("--peers", help="JSON {node id: url} (or a nodes.json) with every node's address")
    s.add_argument("--token", help="control token (default: generated)")
    s.add_argument("--epoch", type=float, help="unix time of slot 0 (same on every host; default now)")
    s.add_argument("--hop-timeout", type=float, default=2.0, help="seconds before a silent next hop is skipped")
    s.add_argument("--latency-scale", type=float, default=1.0, help="multiply the emulated link latencies (0: none)")
    s.add_argument("--dashboard-port", type=int, default=0, help="port of the dashboard page on 127.0.0.1 (default: a free one)")
    s.add_argument("--no-dashboard", action="store_true", help="start no dashboard (benchmarks)")
    s.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: one process per node here; ray: one actor per node on a Ray cluster (docs/live.md)")
    s.add_argument("--address", help="--backend ray: the Ray cluster's address (default: start a small one here)")
    s.add_argument("--placement", help="--backend ray: JSON {node id: Ray custom resource} (default: spread, a tier apart)")
    s.add_argument("--no-emulation", action="store_true",
                   help="no emulated link latency nor service time: the software alone (benchmarks)")
    s.add_argument("--max-batch", type=int, default=32, help="micro-batch: at most this many requests per model run")
    s.add_argument("--max-batch-wait-us", type=float, default=0.0,
                   help="micro-batch: how long the first request waits for others (0: those that arrived together)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("dashboard", help="serve the live dashboard page of a running IDN (RUN: its run dir)")
    s.add_argument("run_dir", help="the --run-dir of a running 'idn serve'")
    s.add_argument("--port", type=int, default=0, help="port on --host (default: a free one)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--open", action="store_true", help="also open the page in the default web browser")
    s.set_defaults(func=cmd_dashboard)

    s = sub.add_parser("load", help="replay a trace against running nodes; compare with the simulator")
    s.add_argument("scenario")
    s.add_argument("--run-dir", default="idn-run")
    s.add_argument("--trace", help="CSV/Parquet slot,source,task,count (default: the scenario's workload)")
    s.add_argument("--rate-scale", type=float, default=1.0, help="multiply every count")
    s.add_argument("--duration", type=float, default=10.0, help="seconds of trace to replay at most")
    s.add_argument("--max-requests", type=int, default=20000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_load)
