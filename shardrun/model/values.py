"""The value checks and parsers of shards.toml, shared by the loader and the run-options
table: durations, sizes, argv, environment names, volumes, and the one-line messages that
name the file, the key and the fix (`<file>: <key path>: <what>; <fix>`)."""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Volume, frozen_map
from shardrun.model.text import one_line

# Moby's RestrictedNamePattern for volume names.
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def parse_volumes(value: Any, where: str, root: Path) -> tuple[Volume, ...]:
    specs = enumerate(as_str_list(value, where), 1)
    volumes = tuple(_volume(spec, f"{where}[{i}]", root) for i, spec in specs)
    # The engine refuses a container with a "Duplicate mount point"; say so here, earlier.
    unique(((v.target, f"{where}[{i}]") for i, v in enumerate(volumes, 1)), "target")
    return volumes


def _volume(spec: str, where: str, root: Path) -> Volume:
    parts = spec.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    fix = 'write SOURCE:TARGET[:ro|rw], e.g. "./data:/data:ro" or "cache:/root/.cache"'
    if len(parts) != 2 or mode not in ("ro", "rw") or not all(parts):
        fail(where, f'"{spec}" is not a volume', fix)
    source, target = parts
    if not target.startswith("/"):
        fail(where, f'target "{target}" is not an absolute container path', fix)
    if source in (".", "..") or source.startswith(("/", "./", "../", "~")):
        source = os.path.normpath(root / _expand_home(source, where))
    elif not _VOLUME_NAME.fullmatch(source):
        fix = 'start a host path with "/", "./" or "~"'
        fail(where, f'"{source}" is neither a host path nor a volume name', fix)
    return Volume(source, target, read_only=mode == "ro")


def _expand_home(source: str, where: str) -> Path:
    try:
        return Path(source).expanduser()
    except RuntimeError:  # pathlib's answer to "~nosuchuser", or "~" with no HOME
        home = source.split("/", 1)[0]
        fail(where, f'cannot find the home folder "{home}" stands for', "write the path out")


# ---- values --------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}
# Units on every part ("1h30m"), or one bare number of seconds ("90", as a CLI flag gives it).
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+|\d+(?:\.\d+)?")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MAX_SIZE = 2**63  # sizes are int64 bytes in the Engine API
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:([kmgt])(i?b)?|b)?", re.IGNORECASE)


MAX_DURATION = 365 * 86400.0  # seconds


def parse_duration(value: Any, where: str) -> float:
    fix = 'use e.g. "90s", "30m", "1h30m" or a number of seconds'
    text = value.strip().lower() if isinstance(value, str) else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _to_float(value)
    elif _DURATION.fullmatch(text):
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    else:
        fail(where, f"{describe(value)} is not a duration", fix)
    if not (math.isfinite(seconds) and seconds > 0):
        fail(where, f"{describe(value)} is not a positive duration", fix)
    if seconds > MAX_DURATION:  # a slip (a missing unit, extra zeros), not a real wait
        fail(where, f"{describe(value)} is longer than a year", "use at most 365d")
    return seconds


def parse_size(value: Any, where: str) -> int:
    fix = 'use e.g. "512m", "1g", "2GiB" or a number of bytes'
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        number, unit = match.group(1), (match.group(2) or "").lower()
        # Like docker's RAMInBytes, units are binary: 1k = 1024 whether written k, kb or kib.
        scaled = float(number) * _SIZE_UNITS[unit]
        size = int(scaled) if math.isfinite(scaled) else _MAX_SIZE  # "999...9t" is inf
    else:
        fail(where, f"{describe(value)} is not a size", fix)
    if size <= 0:
        fail(where, f"{describe(value)} is not a positive size", fix)
    if size >= _MAX_SIZE:
        fail(where, f"{describe(value)} is too large", "the engine takes sizes below 8 EiB")
    return size


def _to_float(number: float) -> float:
    # tomllib reads integers of any length, and float() raises on one beyond a double.
    try:
        return float(number)
    except OverflowError:
        return math.inf


def parse_argv(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            fail(where, f'cannot split "{value}" ({exc})', "close the quote, or write a list")
    else:
        argv = as_str_list(value, where)
    if not argv:
        fail(where, "is empty", 'give the program and its arguments, e.g. ["pytest", "-q"]')
    return argv


# POSIX's portable environment variable names; docker passes others, but a shell cannot.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_env_names(value: Any, where: str) -> tuple[str, ...]:
    names = as_str_list(value, where)
    for i, name in enumerate(names, 1):
        if not _ENV_NAME.fullmatch(name):
            fix = 'use letters, digits and "_", not starting with a digit, e.g. "API_TOKEN"'
            fail(f"{where}[{i}]", f'"{name}" is not an environment variable name', fix)
    unique(((n, f"{where}[{i}]") for i, n in enumerate(names, 1)), "name")
    return names


def as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        type_error(value, where, "true or false", "true")
    return value


def as_str_list(value: Any, where: str) -> tuple[str, ...]:
    items = as_list(value, where, example='["a", "b"]')
    for i, item in enumerate(items, 1):
        if not isinstance(item, str):
            fail(f"{where}[{i}]", f"expected a string, got {describe(item)}", "quote it")
    return tuple(items)


def as_str_map(value: Any, where: str) -> Mapping[str, str]:
    table = as_table(value, where, example='{ KEY = "value" }')
    out = {}
    for key, item in table.items():
        if isinstance(item, bool):
            item = str(item).lower()  # TOML spelling, not Python's "True"
        elif isinstance(item, (int, float)):
            item = str(item)
        out[key] = as_str(item, join(where, key), empty_ok=True)
    return frozen_map(out)


def as_str(value: Any, where: str, example: str = '"text"', empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        type_error(value, where, "a string", example)
    if not value and not empty_ok:
        fail(where, "is empty", f"write e.g. {leaf(where)} = {example}, or remove the key")
    return value


def as_positive(
    value: Any, where: str, kind: type | tuple[type, ...], most: float | None = None
) -> Any:
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int in Python
        type_error(value, where, "a whole number" if whole else "a number", "4")
    number: Any = value  # an int or a float: the check above made sure
    if not number > 0:  # nan too
        fail(where, f"{value} is not positive", f"use a number {'>= 1' if whole else '> 0'}")
    # Compared, not math.isfinite(): that raises on an int beyond a double, and tomllib
    # reads integers of any length.
    if most is not None and number > most:  # inf too
        fail(where, f"{value} is too large", f"use a number up to {most}")
    return value


def as_list(value: Any, where: str, example: str = "[...]") -> list:
    if not isinstance(value, list):
        type_error(value, where, "an array", example)
    return value


def as_table(value: Any, where: str, example: str = "{ ... }") -> dict:
    if not isinstance(value, dict):
        type_error(value, where, "a table", example)
    return value


def as_array_of_tables(value: Any, where: str, header: str) -> list:
    if not isinstance(value, list):
        fail(where, f"expected an array of tables, got {describe(value)}", f"write {header}")
    return value


def unique(labelled: Iterable[tuple[str, str]], what: str) -> None:
    """Fail on the first repeated key of (key, where) pairs, naming both places."""
    seen: dict[str, str] = {}
    for key, where in labelled:
        if key in seen:
            other = seen[key].split(": ", 1)[-1]  # the file is named once, at the start
            fail(where, f'{what} "{key}" is also used by {other}', f"make each {what} unique")
        seen[key] = where


def check_keys(table: Mapping, valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            fix = f'did you mean "{close[0]}"?' if close else f"valid keys: {', '.join(valid)}"
            fail(join(where, key), "unknown key", fix)


# ---- messages ------------------------------------------------------------------------


def join(where: str, key: str) -> str:
    return f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"


def leaf(where: str) -> str:
    return where.rsplit(": ", 1)[-1].rsplit(".", 1)[-1]


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def type_error(value: Any, where: str, expected: str, example: str) -> NoReturn:
    got = f"expected {expected}, got {describe(value)}"
    fail(where, got, f"write e.g. {leaf(where)} = {example}")


def fail(where: str, what: str, fix: str) -> NoReturn:
    raise ConfigError(one_line(f"{where}: {what}; {fix}"))
