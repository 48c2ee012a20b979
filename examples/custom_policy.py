"""Bring your own policy: "most popular models per node, refreshed every W
slots", compared with INFIDA and the online greedy baseline on the built-in
scenario, all on the same requests.

    python examples/custom_policy.py [--slots 120] [--seed 0]

The class is also usable from the command line and in experiment files as
``custom_policy:MostPopular`` when this directory is on PYTHONPATH:

    PYTHONPATH=examples idn run default --policy custom_policy:MostPopular --param window=20 --slots 50 --out out/mp
"""

import argparse

import numpy as np

import idn


class MostPopular(idn.Policy):
    """Every ``window`` slots each node keeps the models most requested through
    it over the last window (requests whose candidate list holds the pair),
    most popular first, as many as fit its budget."""

    name = "most-popular"
    defaults = {"window": 10}
    state_attrs = ("_seen", "_slot", "_x")  # carried from slot to slot (and through checkpoints)

    def _start(self, trace):
        self.view = idn.view(self.rt)
        v = self.view
        self._pair = v.entry_node * v.n_models + v.entry_model  # flat (V*M) index of each candidate entry
        self._useful = ~v.permanent.ravel()[self._pair]  # permanent pairs are always there
        self._seen = np.zeros(v.n_types)  # requests per type since the last refresh
        self._slot = 0
        self._x = v.empty_allocation()

    def propose(self):
        return self._x

    def learn(self, counts, share):
        self._seen += counts
        self._slot += 1
        if self._slot % self.params["window"] == 0:
            self._x = self._refresh(self._seen)
            self._seen[:] = 0

    def _refresh(self, seen):
        v = self.view
        weight = np.where(self._useful, seen[v.entry_type], 0.0)
        popularity = np.bincount(self._pair, weights=weight, minlength=v.n_nodes * v.n_models)
        popularity = popularity.reshape(v.n_nodes, v.n_models)
        x = v.empty_allocation()
        for node in range(v.n_nodes):
            room = v.budget_mb[node]
            for m in np.argsort(-popularity[node], kind="stable"):
                if popularity[node, m] <= 0:
                    break
                if v.size_mb[m] <= room:
                    x[node, m], room = 1.0, room - v.size_mb[m]
        return x


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    net = idn.load_scenario("default")
    trace = idn.generate_trace(net, slots=args.slots, seed=args.seed)
    rt = idn.request_types(net, trace)
    counts = idn.count_matrix(rt, trace)
    slots = idn.run(
        rt, counts,
        {"most-popular (W=10)": MostPopular(window=10), "most-popular (W=30)": MostPopular(window=30),
         "infida": "infida", "online-greedy": "online-greedy"},
        seed=args.seed,
    )  # fmt: skip
    table = idn.summarize(slots)
    bound = idn.bounds(rt, counts)["static_lp_bound"]
    table["pct_of_LP_bound"] = 100 * table["total_gain"] / bound
    columns = ["policy", "time_avg_gain", "pct_of_LP_bound", "normalized_gain", "mean_latency_ms", "model_loads"]
    print(f"{net.name}: {args.slots} slots, {int(counts.sum())} requests, seed {args.seed}")
    print(table[columns].to_string(index=False, float_format=lambda f: f"{f:.4g}"))


if __name__ == "__main__":
    main()
