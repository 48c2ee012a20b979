"""Real request traces brought in as traces of a scenario (``idn trace
import``, ``idn.import_trace``, the workload kind ``servegen``): readers for
a ServeGen directory (:mod:`.servegen`) and a per-request log
(:mod:`.requests`), arrivals drawn within a window from its fitted
inter-arrival law (:mod:`.sampling`), and the import itself with its
documented mapping of streams to tasks and clients to sources
(:mod:`.core`; docs/workloads.md)."""

from .assemble import cumulative_round
from .core import DEFAULT_SPILL, FORMATS, TASK_ORDERS, ImportResult, import_trace, mapping_path, scenario_rate, servegen_workload
from .servegen import WINDOW_SECONDS, read_streams

__all__ = [
    "DEFAULT_SPILL", "FORMATS", "TASK_ORDERS", "WINDOW_SECONDS", "ImportResult", "cumulative_round", "import_trace",
    "mapping_path", "read_streams", "scenario_rate", "servegen_workload",
]  # fmt: skip
