"""Cost against size: generated tiered trees from 1e4 to 1e7 candidate
entries (40 tasks, stationary Zipf 0.8, 100 requests a second per access
node, the big-tree example's settings). Per size and part, a fresh process
(so peak memory is that part's alone) reports:

- infida: seconds per slot of the whole slot (propose + serve + learn) and of
  the slot update alone (Infida.learn: supergradient, mirror step,
  projection, rounding), medians over the slots after the first; its
  per-entry speed (entries per second of learn); peak RSS;
- greedy: online greedy's seconds per slot (median) and static greedy's
  start-up, up to --greedy-max entries;
- bound: the fast bound (static + per slot) seconds and its gaps against
  the feasible gains it found;
- peak memory (ru_maxrss) of each part, and per candidate entry.

Times are CPU seconds of the process (time.process_time): the machine has 2
cores shared with other work (load averages of 10-15 while this ran), so
wall-clock figures measured the queue for a core, not the code; the CPU
time of a single-threaded process does not (cache contention aside).

    python benchmarks/bench_scale.py                       # 1e4 .. 1e6, ~10 min on 2 shared cores
    python benchmarks/bench_scale.py --sizes 1e4,1e5,1e6,1e7 --slots 6
    python benchmarks/bench_scale.py --figure benchmarks/scale.png

Prints a table (also appended to benchmarks/last_scale.txt) and draws the
log-log figure of cost against size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (regional, edge per regional, access per edge) -> about 14.2 entries per (access node, task), 40 tasks
TREES = {
    "1e4": (2, 3, 3),
    "1e5": (5, 6, 6),
    "1e6": (10, 10, 18),
    "1e7": (20, 30, 30),
}
TASKS = 40


def scenario(size: str) -> dict:
    r, e, a = TREES[size]
    return {
        "name": f"scale-{size}",
        "alpha": 2.0,
        "topology": {"tiered_tree": {"regional": r, "edge_per_regional": e, "access_per_edge": a}},
        "tasks": {"generate": {"count": TASKS, "models_per_task": [6, 8], "seed": 7}},
        "workload": {"kind": "stationary", "rate": 100, "zipf": 0.8},
    }


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(size: str, part: str, slots: int) -> dict:
    """Run one part on one size in this process; returns its figures."""
    import numpy as np

    from idn import serving
    from idn.model.scenario import scenario_from_dict
    from idn.policies.registry import make_policy
    from idn.sim.inputs import count_matrix, default_trace, request_types_for

    t0 = time.perf_counter()
    idn = scenario_from_dict(scenario(size))
    trace = default_trace(idn, slots, 0)
    rt = request_types_for(idn, trace)
    counts = count_matrix(rt, trace)
    del trace
    out = {"size": size, "part": part, "entries": rt.n_entries, "types": rt.n_types, "nodes": idn.n_nodes,
           "setup_s": time.perf_counter() - t0, "setup_peak_mb": peak_mb()}  # fmt: skip
    clock = time.process_time  # CPU seconds: see the module docstring
    if part == "infida":
        pol = make_policy("infida")
        pol.start(rt, 0)
        slot_s, learn_s = [], []
        for t in range(slots):
            a = clock()
            x = pol.propose()
            share = serving.capacity_share(rt, counts[t])
            serving.serve(rt, counts[t], x, share)
            b = clock()
            pol.learn(counts[t], share)
            c = clock()
            slot_s.append(c - a)
            learn_s.append(c - b)
        out["infida_slot_s"] = float(np.median(slot_s[1:]))
        out["infida_learn_s"] = float(np.median(learn_s[1:]))
        out["infida_entries_per_s"] = rt.n_entries / out["infida_learn_s"]
    elif part == "greedy":
        pol = make_policy("online-greedy")
        pol.start(rt, 0)
        times = []
        for t in range(slots):
            a = clock()
            pol.propose()
            pol.learn(counts[t], serving.capacity_share(rt, counts[t]))
            times.append(clock() - a)
        out["online_greedy_slot_s"] = float(np.median(times[2:])) if len(times) > 2 else float(times[-1])
        a = clock()
        make_policy("static-greedy").start(rt, 0, trace=counts)
        out["static_greedy_s"] = clock() - a
    elif part == "bound":
        from idn.upper_bounds import certified_bounds

        a = clock()
        b = certified_bounds(rt, counts, "fast")
        out["bound_s"] = clock() - a
        out["bound_gap"] = b["gap"]
        out["bound_per_slot_gap"] = b["per_slot_gap"]
    out["peak_mb"] = peak_mb()
    out["peak_bytes_per_entry"] = out["peak_mb"] * 2**20 / rt.n_entries
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1e4,1e5,1e6")
    p.add_argument("--parts", default="infida,bound,greedy")
    p.add_argument("--slots", type=int, default=10)
    p.add_argument("--greedy-max", type=float, default=1.1e6, help="skip the greedy baselines past this many entries")
    p.add_argument("--figure", help="write the log-log figure here (png)")
    p.add_argument("--results", default=os.path.join(HERE, "last_scale.jsonl"), help="JSON lines, appended")
    p.add_argument("--tabulate", action="store_true", help="only print the table (and figure) of --results, latest row per size and part")
    p.add_argument("--one", nargs=2, metavar=("SIZE", "PART"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.slots)))
        return
    if args.tabulate:
        latest = {}
        with open(args.results) as f:
            for line in f:
                r = json.loads(line)
                latest[(r["size"], r["part"])] = r
        rows = sorted(latest.values(), key=lambda r: r["entries"])
        print_table(rows)
        if args.figure:
            figure(rows, args.figure)
        return
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.setdefault("NUMBA_NUM_THREADS", "1")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}, {args.slots} slots")
    rows = []
    for size in args.sizes.split(","):
        for part in args.parts.split(","):
            if part == "greedy" and float(size) > args.greedy_max:
                continue
            cmd = [sys.executable, __file__, "--one", size, part, "--slots", str(args.slots)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if res.returncode != 0:
                print(f"{size} {part}: failed: {res.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            row["load"] = os.getloadavg()[0]
            rows.append(row)
            with open(args.results, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    print_table(rows)
    if args.figure:
        figure(rows, args.figure)


def merged(rows: list[dict]) -> dict[str, dict]:
    by: dict[str, dict] = {}
    for r in rows:
        d = by.setdefault(r["size"], {"entries": r["entries"]})
        for k, v in r.items():
            if k in ("peak_mb", "peak_bytes_per_entry"):
                d[f"{r['part']}_{k}"] = v
            elif k not in ("size", "part"):
                d.setdefault(k, v)
    return by


def print_table(rows: list[dict]) -> None:
    cols = [
        ("entries", "{:,}"), ("infida_slot_s", "{:.4f}"), ("infida_learn_s", "{:.4f}"), ("infida_entries_per_s", "{:.3g}"),
        ("online_greedy_slot_s", "{:.3f}"), ("static_greedy_s", "{:.2f}"), ("bound_s", "{:.1f}"), ("bound_gap", "{:.4f}"),
        ("bound_per_slot_gap", "{:.4f}"), ("infida_peak_mb", "{:.0f}"), ("infida_peak_bytes_per_entry", "{:.0f}"),
        ("bound_peak_mb", "{:.0f}"), ("greedy_peak_mb", "{:.0f}"),
    ]  # fmt: skip
    print("| " + " | ".join(c for c, _ in cols) + " |")
    print("|" + "---|" * len(cols))
    for _, d in merged(rows).items():
        print("| " + " | ".join(fmt.format(d[c]) if d.get(c) is not None else "-" for c, fmt in cols) + " |")


def figure(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = merged(rows)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("infida_slot_s", "INFIDA s / slot"), ("infida_learn_s", "INFIDA update s / slot"),
                       ("online_greedy_slot_s", "online greedy s / slot"), ("static_greedy_s", "static greedy start s"),
                       ("bound_s", "fast bound s (whole trace)")):  # fmt: skip
        pts = sorted((d["entries"], d[key]) for d in by.values() if d.get(key))
        if pts:
            ax.loglog(*zip(*pts), "o-", label=label)
    ax.set_xlabel("candidate entries")
    ax.set_ylabel("seconds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    for key, label in (("infida_peak_mb", "idn run-like INFIDA"), ("bound_peak_mb", "fast bound"),
                       ("greedy_peak_mb", "greedy baselines")):  # fmt: skip
        pts = sorted((d["entries"], d[key]) for d in by.values() if d.get(key))
        if pts:
            bx.loglog(*zip(*pts), "o-", label=label)
    bx.set_xlabel("candidate entries")
    bx.set_ylabel("peak RSS, MB")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
