"""One name for one number across idn's JSON outputs (``idn evaluate
--json``, ``DIR/summary.json``, ``idn bound --json``, ``idn load --json``):
the names of the slot table (``slots.csv``) and the run summary, everywhere.

Renamed in 0.2.0, and still written under the old name too until 0.3.0
(``with_aliases``), so that whatever reads them keeps working:

| output | old name | name |
|---|---|---|
| evaluate --json ``total`` | requests, gain, cost | total_requests, total_gain, total_cost |
| summary.json | lp_bound | static_lp_bound |
| bound --json | method, seconds | bound_method, bound_seconds |
| load --json | accuracy | measured_accuracy (answers that were right) |
| load --json | catalog_accuracy | mean_accuracy (the serving models' accuracy, per request) |
| load --json ``simulated`` | accuracy | mean_accuracy |
"""

from __future__ import annotations


def with_aliases(out: dict, aliases: dict[str, str]) -> dict:
    """``out`` with each old name (a key of ``aliases``) added, holding the
    value of its new name; the new names come first."""
    return {**out, **{old: out[new] for old, new in aliases.items() if new in out}}
