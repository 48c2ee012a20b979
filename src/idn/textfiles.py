"""Reading the user's YAML and JSON files (scenarios, experiments,
allocations) so that any malformed file ends in one line naming it: binary
bytes, an empty file, a syntax error, a duplicate key (YAML would silently
keep the last value), or nesting too deep for the parsers' recursion.

Every problem is a :class:`FileError` (a ``ValueError``) whose message
starts with the file's path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


class FileError(ValueError):
    """A file that cannot be read as the data it should hold; the message names it."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a mapping with the same key twice."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue  # SafeLoader reports the unhashable key itself
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (also on line {seen[key] + 1})", mark
            )
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _unique_pairs(path):
    def hook(pairs):
        out = {}
        for k, v in pairs:
            if k in out:
                raise FileError(f"{path}: JSON: duplicate key {k!r}")
            out[k] = v
        return out

    return hook


def read_text(path: str | Path, what: str) -> str:
    """The file as UTF-8 text; binary bytes and unreadable files are a FileError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FileError(f"{path}: not a text file (a NUL byte at offset {nul}); expected a {what} in YAML or JSON")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileError(
            f"{path}: not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); expected a {what} in YAML or JSON"
        ) from None


def load_data(path: str | Path, what: str, json_only: bool = False) -> Any:
    """Parse a YAML (or, by extension or json_only, JSON) file; None when it
    holds nothing (the caller names that). Syntax errors give line and column."""
    path = Path(path)
    text = read_text(path, what)
    try:
        if json_only or path.suffix.lower() == ".json":
            if not text.strip():
                return None
            return json.loads(text, object_pairs_hook=_unique_pairs(path))
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except FileError:
        raise
    except json.JSONDecodeError as exc:
        raise FileError(f"{path}:{exc.lineno}:{exc.colno}: JSON syntax error: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FileError(f"{at}: YAML syntax error: {problem}") from None
    except RecursionError:
        raise FileError(f"{path}: nested too deeply to be a {what}") from None
    except (ValueError, OverflowError) as exc:  # e.g. an integer with too many digits
        why = "a number with too many digits" if "digits" in str(exc) else str(exc).splitlines()[0]
        raise FileError(f"{path}: cannot read {what}: {why}") from None
