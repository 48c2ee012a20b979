"""Bring your own workload: a trace from your own request log, binned into
slots, run through two policies.

    python examples/custom_workload.py [LOG.csv] [--slot-seconds 1]

LOG.csv is one line per request with a timestamp, where the request entered
and what it asked for, in your own column names; here ``timestamp`` (ISO
8601), ``client_site`` (a node id of the scenario) and ``service`` (a task id).
Without LOG.csv the example first writes such a log (a made-up day of a
small service: bursts at a few sites, a popularity that drifts) so that it
runs as is.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import idn


def write_sample_log(net, path, seconds=90, seed=0):
    """A request log as a service might record it: one row per request."""
    rng = np.random.default_rng(seed)
    sites = list(net.sources)[:6]
    services = list(net.tasks)
    n = rng.poisson(40 * seconds)
    offset = np.sort(rng.uniform(0, seconds, n))
    # popularity drifts over the log: early requests favour the first services, late ones the last
    drift = offset / seconds
    pick = np.minimum((rng.beta(1 + 4 * drift, 5 - 4 * drift) * len(services)).astype(int), len(services) - 1)
    log = pd.DataFrame({
        "timestamp": pd.Timestamp("2026-03-02T09:00:00Z") + pd.to_timedelta(offset, unit="s"),
        "client_site": rng.choice(sites, size=n, p=np.linspace(2, 1, len(sites)) / np.linspace(2, 1, len(sites)).sum()),
        "service": [services[i] for i in pick],
        "latency_budget_ms": 100,  # other columns are ignored
    })  # fmt: skip
    log.to_csv(path, index=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?", help="request log (CSV); default: write a sample one")
    parser.add_argument("--slot-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    net = idn.load_scenario("default")
    with tempfile.TemporaryDirectory() as tmp:
        log_path = args.log
        if log_path is None:
            log_path = Path(tmp) / "requests.csv"
            write_sample_log(net, log_path)
            print("a sample request log:\n  " + "\n  ".join(log_path.read_text().splitlines()[:3]) + "\n  ...")
        # your columns -> idn's request-log columns (time, source, task); times as datetimes or seconds
        log = pd.read_csv(log_path, parse_dates=["timestamp"])
    log = log.rename(columns={"timestamp": "time", "client_site": "source", "service": "task"})
    trace = idn.bin_requests(log, slot_seconds=args.slot_seconds)
    print(f"{len(log)} requests -> {trace['slot'].max() + 1} slots of {args.slot_seconds:g} s")

    rt = idn.request_types(net, trace)
    counts = idn.count_matrix(rt, trace)
    slots = idn.run(rt, counts, ["infida", "online-greedy"], seed=args.seed)
    table = idn.summarize(slots)
    print(table[["policy", "total_gain", "normalized_gain", "mean_latency_ms", "mean_accuracy"]].to_string(index=False))


if __name__ == "__main__":
    main()
