"""The scenario file's schema (pydantic v2) and its error messages: every
problem becomes one line naming the key path and the value, e.g.
``nodes[2].budget_mb: must be >= 0, got -5``. Loading and the checks that
need the whole scenario (references, repositories, reachability) live in
``idn.model.scenario``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Tier = Literal["access", "edge", "regional", "cloud"]
Hardware = Literal["cpu", "gpu"]
NonEmpty = Annotated[str, Field(min_length=1)]


class ScenarioError(ValueError):
    """All problems of a scenario, one line each (``.errors``)."""

    def __init__(self, errors: list[str], path: str | Path | None = None):
        self.errors = list(errors)
        self.path = path
        super().__init__("\n".join(self.errors))


# Upper ends of the sane ranges: far beyond any real IDN, low enough that
# sums and products of them stay finite (a latency of 1e308 ms would make
# every path cost inf and the path search never settle).
MAX_MS = 1e7  # latencies and service times: about 3 hours
MAX_MB = 1e9  # sizes and budgets: a petabyte
MAX_COUNT = 1_000_000  # workers, speed factors
MAX_TASKS = 100_000


class _Spec(BaseModel):
    # allow_inf_nan=False: YAML reads 1e400 as inf and .nan as nan; both are mistakes
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class NodeSpec(_Spec):
    id: NonEmpty
    tier: Tier | None = None  # required unless the node overrides a generated one
    hardware: Hardware = "cpu"
    speed: float = Field(1.0, gt=0, le=MAX_COUNT)
    workers: int = Field(1, gt=0, le=MAX_COUNT)
    budget_mb: float = Field(0.0, ge=0, le=MAX_MB)
    repository: bool = False


class LinkSpec(_Spec):
    a: NonEmpty
    b: NonEmpty
    latency_ms: float = Field(gt=0, le=MAX_MS)


class ModelSpec(_Spec):
    id: NonEmpty
    accuracy: float = Field(gt=0, le=1)
    size_mb: float = Field(gt=0, le=MAX_MB)
    service_ms: dict[Hardware, Annotated[float, Field(gt=0, le=MAX_MS)]]


class TaskSpec(_Spec):
    id: NonEmpty
    models: list[Any] = []

    @field_validator("id")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v:
            raise ValueError("must not contain '/' (model ids are '<task>/<model>')")
        return v


class GenerateSpec(_Spec):
    count: int = Field(gt=0, le=MAX_TASKS)
    models_per_task: tuple[int, int] = (6, 8)
    seed: int = Field(0, ge=0)
    architectures: list[str] | None = None

    @field_validator("models_per_task", mode="before")
    @classmethod
    def _range(cls, v: Any) -> Any:
        lo_hi = (v, v) if isinstance(v, int) and not isinstance(v, bool) else v
        if not (isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2 and all(isinstance(x, int) for x in lo_hi)):
            raise ValueError("must be an integer or a pair [lo, hi]")
        if not 1 <= lo_hi[0] <= lo_hi[1]:
            raise ValueError("must satisfy 1 <= lo <= hi")
        return tuple(lo_hi)


class ScenarioSpec(_Spec):
    name: NonEmpty | None = None
    slot_seconds: float = Field(1.0, gt=0, le=MAX_MS)
    alpha: float = Field(1.0, ge=0, le=MAX_MS)
    catalog: NonEmpty | None = None
    topology: dict[str, Any] | None = None
    nodes: list[Any] = []
    links: list[Any] = []
    tasks: Any = None
    sources: list[str] | None = None
    workload: dict[str, Any] | None = None


# ---- error messages -------------------------------------------------------


def show(x: Any) -> str:
    if isinstance(x, int) and not isinstance(x, bool) and abs(x) >= 10**16:
        return f"an integer of {len(str(abs(x)))} digits" if abs(x) < 10**4000 else "a huge integer"
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else _short(repr(x))


def _short(text: str, limit: int = 80) -> str:
    """A value in a one-line message: long values are cut (a fuzzed file may hold megabytes)."""
    return text if len(text) <= limit else text[: limit - 5] + " ...'"


_PLAIN = {
    "int_type": "must be an integer", "int_parsing": "must be an integer", "int_from_float": "must be an integer",
    "float_type": "must be a number", "float_parsing": "must be a number", "finite_number": "must be a finite number",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string", "string_too_short": "must not be empty",
    "dict_type": "must be a mapping", "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
    "list_type": "must be a list", "tuple_type": "must be a list",
}  # fmt: skip


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _loc(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            part = str(part) if str(part).isprintable() else repr(part)  # a key with a newline stays on one line
            out += f".{part}" if out else part
    return out


def pydantic_messages(exc: ValidationError, prefix: str, spec: type[BaseModel]) -> list[str]:
    out = []
    for e in exc.errors():
        where, kind, ctx, value = _loc(prefix, e["loc"]), e["type"], e.get("ctx") or {}, e.get("input")
        if kind == "missing":
            out.append(f"{where}: required")
            continue
        if kind == "extra_forbidden":
            out.append(f"{where}: unknown key{did_you_mean(e['loc'][-1], spec.model_fields)}")
            continue
        bounds = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
        if kind in bounds:
            op = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[bounds[kind]]
            msg = f"must be {op} {show(ctx[bounds[kind]])}"
        elif kind == "literal_error":
            msg = f"must be one of {ctx['expected']}"
        elif kind == "value_error":
            msg = str(ctx.get("error", e["msg"]))
        else:
            msg = _PLAIN.get(kind, e["msg"][:1].lower() + e["msg"][1:])
        out.append(f"{where}: {msg}, got {show(value)}")
    return out


def validate_item(spec: type[BaseModel], data: Any, where: str, errors: list[str]):
    if not isinstance(data, dict):
        errors.append(f"{where}: must be a mapping, got {show(data)}")
        return None
    try:
        return spec.model_validate(data)
    except ValidationError as exc:
        errors.extend(pydantic_messages(exc, where, spec))
        return None
