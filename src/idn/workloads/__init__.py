"""Workloads: request traces (per-slot tables ``slot, source, task, count``),
their synthetic generators, files and the conversion the simulator uses."""

from .generators import (
    adversarial,
    adversarial_schedule,
    diurnal,
    diurnal_profile,
    flash_crowd,
    shifting,
    source_weight_vector,
    stationary,
    zipf_popularity,
)
from .spec import WORKLOAD_KINDS, check_spec, from_file, from_spec, workload_parameters
from .summary import format_summary, summarize
from .traces import (
    COLUMNS,
    TIMESTAMP_COLUMNS,
    bin_requests,
    check_known,
    empty_trace,
    read_trace,
    to_matrix,
    validate_trace,
    write_trace,
)

__all__ = [
    "COLUMNS",
    "TIMESTAMP_COLUMNS",
    "WORKLOAD_KINDS",
    "adversarial",
    "adversarial_schedule",
    "bin_requests",
    "check_known",
    "check_spec",
    "diurnal",
    "diurnal_profile",
    "empty_trace",
    "flash_crowd",
    "format_summary",
    "from_file",
    "from_spec",
    "read_trace",
    "shifting",
    "source_weight_vector",
    "stationary",
    "summarize",
    "to_matrix",
    "validate_trace",
    "workload_parameters",
    "write_trace",
    "zipf_popularity",
]
