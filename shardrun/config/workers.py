"""The [[worker]] tables and `--worker VALUE[*SLOTS]`: which engines run the shards."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shardrun.config.spec import Config, WorkerSpec
from shardrun.model.transit import AUTO, COMPRESS_SETTINGS
from shardrun.model.values import (
    as_array_of_tables,
    as_bool,
    as_positive,
    as_str,
    as_table,
    check_keys,
    fail,
    join,
    parse_volumes,
    unique,
)

# How the image travels to a worker (distribute.codec_choice): "auto" decides by measurement.
# Each slot is a container running at once, with its log file, its engine connection and
# threads of this process: 256 already nears the default limit of 1024 open files, and
# more is a slip (slots = 8000 for 8) that would start thousands of containers.
MAX_SLOTS = 256
# The current docker context, as `docker` itself would use.
DEFAULT = WorkerSpec(name=None, context="default", host=None, slots=None)


def chosen(
    config: Config, given: Sequence[WorkerSpec] = (), require_all: bool = False
) -> tuple[WorkerSpec, ...]:
    """The workers of a command: `--worker`'s (`given`), else the config's, else the current
    context; with `require_all`, losing any of them fails the run."""
    specs = tuple(given) or config.workers or (DEFAULT,)
    if require_all:
        specs = tuple(replace(spec, required=True) for spec in specs)
    return specs


def parse_workers(value: Any, where: str, root: Path) -> tuple[WorkerSpec, ...]:
    tables = as_array_of_tables(value, where, "[[worker]]")
    workers = [_worker(t, f"{where}[{i}]", root) for i, t in enumerate(tables, 1)]
    unique(((w.name, f"{where}[{i}]") for i, w in enumerate(workers, 1) if w.name), "name")
    return tuple(workers)


def _worker(table: Any, where: str, root: Path) -> WorkerSpec:
    table = as_table(table, where, example='[[worker]] context = "box2"')
    check_keys(
        table, ("name", "context", "host", "slots", "volumes", "required", "compress"), where
    )
    got = {k: as_str(table[k], join(where, k)) for k in ("name", "context", "host") if k in table}
    if ("context" in got) == ("host" in got):
        fix = 'set context = "NAME" (a docker context) or host = "ssh://user@HOST"'
        fail(where, "needs exactly one of context and host", fix)
    if "host" in got:
        _check_host(got["host"], join(where, "host"))
    slots = None
    if "slots" in table:
        slots = as_positive(table["slots"], join(where, "slots"), int, most=MAX_SLOTS)
    volumes = parse_volumes(table.get("volumes", []), join(where, "volumes"), root)
    required = as_bool(table["required"], join(where, "required")) if "required" in table else False
    compress = _compress(table, join(where, "compress")) if "compress" in table else AUTO
    return WorkerSpec(
        got.get("name"), got.get("context"), got.get("host"), slots, volumes, required, compress
    )


def _compress(table: Any, where: str) -> str:
    value = as_str(table["compress"], where)
    if value not in COMPRESS_SETTINGS:
        choices = ", ".join(f'"{c}"' for c in COMPRESS_SETTINGS)
        fail(where, f'"{value}" is not a codec', f"use one of {choices}")
    return value


def parse_worker_option(value: str) -> WorkerSpec:
    """`--worker VALUE[*SLOTS]`: a docker context name (`default`: the current one) or an
    engine URL, e.g. `ssh://ci@box2*8`."""
    where = f'--worker "{value}"'
    target, star, slots_text = value.partition("*")
    slots = None
    if star:
        digits = slots_text.lstrip("0")
        if not (slots_text.isascii() and slots_text.isdigit()) or not digits:
            fail(where, f'"{slots_text}" is not a slot count', "write e.g. ssh://ci@box2*8")
        # int() refuses more than 4300 digits: anything past 4 is too many anyway.
        slots = check_slots(int(digits) if len(digits) <= 4 else MAX_SLOTS + 1, where)
    if not target:
        fail(where, "names no worker", "give a docker context name or an engine URL")
    if "://" in target:
        _check_host(target, where)
        return WorkerSpec(name=None, context=None, host=target, slots=slots)
    return WorkerSpec(name=None, context=target, host=None, slots=slots)


def check_slots(slots: int | None, where: str) -> int | None:
    """`slots` (`--worker`'s, or `--jobs`), refused beyond MAX_SLOTS; `where` names it."""
    if slots is not None and slots > MAX_SLOTS:
        fix = f"give at most {MAX_SLOTS}: each slot is a container running at once"
        fail(where, f"more than {MAX_SLOTS} slots", fix)
    return slots


def _check_host(host: str, where: str) -> None:
    try:
        url = urlsplit(host)
        url.port  # noqa: B018 - reading the port validates it
        ok = url.scheme in ("unix", "tcp", "ssh") and bool(
            url.path if url.scheme == "unix" else url.hostname
        )
    except ValueError:
        ok = False
    if not ok:
        fix = "use unix:///PATH, tcp://HOST:PORT or ssh://user@HOST[:PORT]"
        fail(where, f'"{host}" is not a docker host URL', fix)
