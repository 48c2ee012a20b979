"""The built-in model catalog: the Keras Applications figures in
``idn/data/keras_applications.csv`` (provenance in ``SOURCE.md`` beside it).

How the CSV columns become model fields (design page, section 2):

- ``accuracy`` = ``top1_accuracy`` (a fraction in (0, 1]).
- ``size_mb`` = ``size_mb`` (the weights file; what a node's budget must hold).
- ``service_ms`` = ``{"cpu": cpu_ms_per_step, "gpu": gpu_ms_per_step}``.

**Decision** on service times: one catalog "step" (a batch of 32 images on a
92-core AMD EPYC, or on an NVIDIA A100) is taken as the time that one worker
of a node of that hardware class with speed 1.0 needs for one request. A
node's speed factor divides it (tau_v^m = service_ms[hw_v] / speed_v), so
slower edge hardware has speed < 1. Why: a batch of 32 spread over 92 cores
is about one image on ~3 cores, which is roughly what one worker of an edge
box gives one request; on a GPU, per-request latency at small batch is close
to the per-step figure because the step is latency-bound, not compute-bound.
Taking the step as-is keeps the catalog's relative ordering of models (the
thing the latency-accuracy trade-off depends on) and avoids inventing a
per-image conversion the source does not give.

Other columns (top5_accuracy, params_millions, depth) are kept on the entry
for reports but do not enter the model.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

_COLUMNS = ("model", "size_mb", "top1_accuracy", "cpu_ms_per_step", "gpu_ms_per_step")


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    accuracy: float  # top-1, in (0, 1]
    size_mb: float
    service_ms: dict[str, float]  # per hardware class, one request on one worker at speed 1
    top5_accuracy: float | None = None
    params_millions: float | None = None
    depth: int | None = None


def _parse(text: str, origin: str) -> dict[str, CatalogEntry]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{origin}: missing column(s) {', '.join(missing)}")
    out: dict[str, CatalogEntry] = {}
    for line, row in enumerate(reader, start=2):
        name = row["model"].strip()
        try:
            entry = CatalogEntry(
                name=name,
                accuracy=float(row["top1_accuracy"]),
                size_mb=float(row["size_mb"]),
                service_ms={"cpu": float(row["cpu_ms_per_step"]), "gpu": float(row["gpu_ms_per_step"])},
                top5_accuracy=float(row["top5_accuracy"]) if row.get("top5_accuracy") else None,
                params_millions=float(row["params_millions"]) if row.get("params_millions") else None,
                depth=int(row["depth"]) if row.get("depth") else None,
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{origin}:{line}: model {name!r}: bad number ({exc})") from None
        if name in out:
            raise ValueError(f"{origin}:{line}: duplicate model {name!r}")
        out[name] = entry
    return out


@lru_cache(maxsize=None)
def _builtin() -> dict[str, CatalogEntry]:
    text = (resources.files("idn") / "data" / "keras_applications.csv").read_text(encoding="utf-8")
    return _parse(text, "keras_applications.csv")


def catalog(path: str | Path | None = None) -> dict[str, CatalogEntry]:
    """{architecture name: entry}, in file order. ``path``: a CSV with the same
    columns instead of the built-in one."""
    if path is None:
        return dict(_builtin())
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read catalog ({exc.strerror})") from None
    return _parse(text, str(path))


def catalog_names() -> list[str]:
    """Names of the built-in catalog, in file order."""
    return list(_builtin())
