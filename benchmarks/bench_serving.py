"""Serving, gain and supergradient of one slot on the large scenario
(capacity_share + serve + gain_and_supergradient), against the plain
reference of tests/reference.py timed in the same run.

    python benchmarks/bench_serving.py [--repeats 50] [--ref-fraction 0.05]

The allocation served is INFIDA's (x) and the supergradient is taken at its
fractional state (y), at two points: the start (uniform y) and after 50
slots of learning; how far down the lists requests go, hence the work, depends
on the state. The reference's supergradient is cubic in the list length (it
re-sums the prefix for every pair of positions), so it is run on a seeded
random sample of the request types and its time scaled by entries to the
whole scenario; its shares (linear) run on everything.
"""

from __future__ import annotations

import argparse

import common  # noqa: F401  (one-core setup first)
import numpy as np
import reference as ref

from idn import serving
from idn.policies.infida.policy import Infida

TARGET_RATE, TARGET_SPEEDUP = 5e7, 50.0


def fast_slot(rt, counts, x, y):
    def run():
        share = serving.capacity_share(rt, counts)
        serving.serve(rt, counts, x, share)
        serving.gain_and_supergradient(rt, counts, y, share)

    return run


def check_against_reference(rt, counts, x, y, lists, share_ref, sub):
    """The fast numbers equal the reference's on the sampled types (same shares)."""
    share = serving.capacity_share(rt, counts)
    np.testing.assert_allclose(share, np.concatenate([r for r in share_ref]), rtol=1e-9)
    only = np.zeros_like(counts)
    only[sub] = counts[sub]  # shares stay those of the whole slot: they are passed in
    sub_lists = [lists[i] for i in sub]
    sub_share = [share_ref[i] for i in sub]
    served_ref, _, gain_ref, _ = ref.serve(sub_lists, counts[sub], sub_share, x.tolist())
    out = serving.serve(rt, only, x, share)
    idx = np.concatenate([np.arange(rt.offsets[i], rt.offsets[i + 1]) for i in sub])
    np.testing.assert_allclose(out.served[idx], np.concatenate(served_ref), rtol=1e-9, atol=1e-9)
    assert abs(out.gain - gain_ref) <= 1e-9 * max(1.0, abs(gain_ref))
    g_ref = np.array(ref.supergradient(sub_lists, counts[sub], sub_share, y.tolist(), rt.idn.n_nodes, rt.idn.n_models))
    _, g = serving.gain_and_supergradient(rt, only, y, share)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--ref-fraction", type=float, default=0.05, help="share of request types the reference runs on")
    args = ap.parse_args(argv)

    common.header("serving + gain + supergradient, one slot")
    rt, trace = common.large_scenario()
    idn = rt.idn
    counts = trace[0]
    print(f"   scenario {idn.name}: {idn.n_nodes} nodes, {idn.n_models} models, {rt.n_types} request types, "
          f"{rt.n_entries} candidate entries (mean list {rt.list_length.mean():.1f}), "
          f"{counts.sum():.0f} requests in the slot")  # fmt: skip

    policy = Infida().start(rt, seed=0)
    states = {"start": (policy.propose().copy(), policy.state())}
    for t in range(50):
        policy.learn(trace[t % len(trace)], serving.capacity_share(rt, trace[t % len(trace)]))
    states["after 50 slots"] = (policy.propose().copy(), policy.state())

    lists = common.reference_lists(rt)
    sub = common.sample_types(rt, args.ref_fraction, seed=1)
    sub_entries = int(rt.list_length[sub].sum())
    scale = rt.n_entries / sub_entries
    share_ref, t_share_ref = common.once(lambda: ref.shares(lists, counts))
    sub_lists = [lists[i] for i in sub]
    sub_share = [share_ref[i] for i in sub]

    print(f"   reference: shares on all {rt.n_entries} entries; serve + supergradient on {len(sub)} sampled types "
          f"({sub_entries} entries), time x {scale:.1f} (scaled by entries)")  # fmt: skip
    print(f"   {'state':<16}{'fast ms':>9}{'  (share/serve/grad)':<24}{'entries/s':>11}"
          f"{'ref s (est.)':>14}{'speed-up':>10}")  # fmt: skip
    results = {}
    for name, (x, y) in states.items():
        check_against_reference(rt, counts, x, y, lists, share_ref, sub)
        times = common.timeit(fast_slot(rt, counts, x, y), args.repeats)
        total = np.median(times)
        share = serving.capacity_share(rt, counts)
        parts = [
            np.median(common.timeit(f, args.repeats))
            for f in (
                lambda: serving.capacity_share(rt, counts),
                lambda: serving.serve(rt, counts, x, share),
                lambda: serving.gain_and_supergradient(rt, counts, y, share),
            )
        ]
        yl, xl = y.tolist(), x.tolist()
        _, t_serve = common.once(lambda: ref.serve(sub_lists, counts[sub], sub_share, xl))
        _, t_grad = common.once(
            lambda: ref.supergradient(sub_lists, counts[sub], sub_share, yl, idn.n_nodes, idn.n_models)
        )
        t_ref = t_share_ref + (t_serve + t_grad) * scale
        rate, speedup = rt.n_entries / total, t_ref / total
        results[name] = {
            "ms": total * 1e3, "best_ms": times.min() * 1e3, "entries_per_s": rate, "reference_s": t_ref, "speedup": speedup,
        }  # fmt: skip
        split = "/".join(f"{p * 1e3:.2f}" for p in parts)
        print(f"   {name:<16}{total * 1e3:>9.3f}  ({split}){'':<{max(0, 20 - len(split))}}"
              f"{rate:>11.3g}{t_ref:>14.2f}{speedup:>10.0f}x")  # fmt: skip
    print(f"   (medians of {args.repeats} repeats; best repeats "
          + ", ".join(f"{r['best_ms']:.3f} ms" for r in results.values()) + ")")
    worst = min(results.values(), key=lambda r: r["entries_per_s"])
    print("   fast and reference agree on the sampled types (shares, served, gain, supergradient; rtol 1e-9)")
    print(f"   target >= {TARGET_RATE:.0e} entries/s: {common.verdict(worst['entries_per_s'] >= TARGET_RATE)} "
          f"(worst state {worst['entries_per_s']:.3g}); "
          f"target >= {TARGET_SPEEDUP:.0f}x the reference: "
          f"{common.verdict(min(r['speedup'] for r in results.values()) >= TARGET_SPEEDUP)}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
