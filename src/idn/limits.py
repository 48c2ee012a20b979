"""Memory limits stated up front: before building something whose size the
input decides (a generated topology, the request types and their candidate
entries, a trace, the count matrix), estimate its memory and refuse, in one
line giving the estimate and the limit, when it would not fit. Better than a
run that grows for minutes and is then killed (a tiered tree of 100 x 100 x
100 nodes asks for ~10^8 candidate entries).

The limit: ``--memory-limit GB`` on the command line (``idn --memory-limit
32 run ...``), else the environment variable ``IDN_MEMORY_LIMIT_GB`` (worker
processes of a sweep inherit it), else half the machine's physical memory.

The estimates are per item, measured on this code (tracemalloc peaks while
building; numbers rounded up): they are meant to be right within a factor of
about two, which is what refusing "100 GB on a 16 GB machine" needs.
"""

from __future__ import annotations

import os

ENV = "IDN_MEMORY_LIMIT_GB"

# bytes per item of what the input decides
PER_NODE = 4_000  # a generated node and its link: dicts, the validated spec, the graph
PER_REQUEST_TYPE = 400  # per (source, task): index arrays, key maps, its path
PER_ENTRY = 250  # per candidate entry: ~10 arrays in RequestTypes, build temporaries, the serving buffers
PER_COUNT = 16  # per (slot, request type) cell of the dense count matrix, and the copy made of it
PER_TRACE_ROW = 150  # per row of a trace table (ids as Python strings)
CSV_BYTES_FACTOR = 12  # a CSV trace in memory, per byte on disk (str columns, then parsed)


class LimitError(ValueError):
    """An input that would need more memory than the limit."""


def limit_bytes() -> float:
    value = os.environ.get(ENV)
    if value:
        try:
            gb = float(value)
        except ValueError:
            raise LimitError(f"{ENV}={value!r}: must be a number of GB") from None
        return gb * 2**30
    try:
        return 0.5 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def set_limit(gb: float) -> None:
    """``--memory-limit``: for this process and the ones it starts."""
    if not (gb == gb and 0 < gb < 1e6):
        raise LimitError(f"--memory-limit: must be a number of GB > 0, got {gb!r}")
    os.environ[ENV] = repr(float(gb))


def size_text(n_bytes: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if n_bytes >= scale or unit == "MB":
            return f"{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes:.0f} B"  # pragma: no cover


def check(where: str, what: str, estimate: float) -> None:
    """Refuse (LimitError) when estimate bytes exceed the limit; where names
    the culprit (file, key), what says what would be built and how big."""
    limit = limit_bytes()
    if estimate > limit:
        raise LimitError(
            f"{where}: {what} would need about {size_text(estimate)} of memory, over the limit of "
            f"{size_text(limit)}; raise it with --memory-limit GB (or {ENV}) if the machine has it"
        )


def check_request_types(where: str, n_types: int, n_entries: int) -> None:
    estimate = n_types * PER_REQUEST_TYPE + n_entries * PER_ENTRY
    check(where, f"{n_types:,} request types with up to {n_entries:,} candidate entries", estimate)


def check_counts(where: str, slots: int, n_types: int) -> None:
    check(where, f"a count matrix of {slots:,} slots x {n_types:,} request types", float(slots) * n_types * PER_COUNT)
