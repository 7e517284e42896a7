"""Read shards.toml (or [tool.shardrun] in pyproject.toml) into frozen dataclasses.

Pure apart from reading the file and checking that the Dockerfile and build context
exist. Every problem is one ConfigError line: `<file>: <key path>: <what>; <fix>`.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlsplit

from shardrun.errors import ConfigError


def _frozen_map(items: Mapping[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True)
class Volume:
    source: str
    target: str
    read_only: bool = False

    @property
    def is_bind(self) -> bool:
        # Bind sources are made absolute while parsing; a named volume cannot start with "/".
        return self.source.startswith("/")


@dataclass(frozen=True)
class RunOptions:
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    # Mappings are read-only proxies, left out of the hash because a dict has none.
    env: Mapping[str, str] = field(default_factory=_frozen_map, hash=False)
    volumes: tuple[Volume, ...] = ()
    workdir: str | None = None
    user: str | None = None
    shm_size: int | None = None
    security_opt: tuple[str, ...] = ()
    network: str | None = None
    cpus: float | None = None
    memory: int | None = None
    timeout: float | None = None
    # Names only: the values come from the runner's environment when a shard starts (not
    # here, config stays pure), so a token never has to be written into shards.toml.
    secret_env: tuple[str, ...] = ()
    # None means false; kept apart so a shard's false can override a default's true.
    docker_socket: bool | None = None
    # Paths (globs allowed) in the container, copied out after it exits (see artifacts.py).
    artifacts: tuple[str, ...] = ()
    artifacts_when: str | None = None  # "failure" (None: the default) or "always"
    artifacts_max: int | None = None  # bytes per shard; None: ARTIFACTS_MAX
    junit: str | None = None  # the shard's own JUnit file in the container, always copied

    def __post_init__(self) -> None:
        object.__setattr__(self, "env", _frozen_map(self.env))


def fill(text: str, index: int, total: int) -> str:
    """Substitute {index} and {total}. Not str.format: commands often hold other braces."""
    return text.replace("{index}", str(index)).replace("{total}", str(total))


@dataclass(frozen=True)
class ShardSpec:
    name: str
    count: int | None
    options: RunOptions
    # How messages name this shard, e.g. 'shards.toml: shard[2] ("unit")'; plan.py checks
    # the merged options and has no other way to name the file.
    where: str = field(default="", compare=False)
    # Globs of files in the build context, split into `count` balanced groups ({files}).
    split: tuple[str, ...] = ()
    per_slot: bool = False  # count = "slots": one group per slot of the run

    @property
    def names(self) -> tuple[str, ...]:
        total = self.count or 1
        return tuple(fill(self.name, i, total) for i in range(1, total + 1))


@dataclass(frozen=True)
class ImageSpec:
    dockerfile: Path
    context: Path
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=_frozen_map, hash=False)
    tag: str | None = None
    builder: str | None = None  # a [[worker]] name, a docker context or an engine URL

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_args", _frozen_map(self.build_args))


@dataclass(frozen=True)
class WorkerSpec:
    name: str | None
    context: str | None
    host: str | None
    slots: int | None
    volumes: tuple[Volume, ...] = ()
    required: bool = False  # a run that loses it fails (exit 4)


@dataclass(frozen=True)
class Config:
    path: Path
    root: Path
    project: str
    image: ImageSpec
    defaults: RunOptions
    shards: tuple[ShardSpec, ...]
    workers: tuple[WorkerSpec, ...]
    timings_file: Path | None = None  # `timings = "..."`: where recorded times are kept

    @property
    def timings_path(self) -> Path:
        """Recorded shard and file times: .shardrun/timings.json, or the file the config
        names, so CI can cache or commit it."""
        return self.timings_file or self.root / ".shardrun" / "timings.json"


# ---- loading -------------------------------------------------------------------------


def load(path: Path | None = None, cwd: Path | None = None) -> Config:
    cwd = (cwd or Path.cwd()).absolute()
    if path is None:
        path, data = _discover(cwd)
    else:
        path = cwd / path
        data = _read(path, cwd)
        if path.name == "pyproject.toml":
            data = _tool_table(data)
            if data is None:
                where = f"{_display(path, cwd)}: tool.shardrun"
                _fail(where, "no such table", "add [tool.shardrun], or use shards.toml")
    return parse(data, path, cwd=cwd)


def _discover(cwd: Path) -> tuple[Path, dict]:
    shards_toml, pyproject = cwd / "shards.toml", cwd / "pyproject.toml"
    if shards_toml.is_file():
        return shards_toml, _read(shards_toml, cwd)
    if pyproject.is_file():
        table = _tool_table(_read(pyproject, cwd))
        if table is not None:
            return pyproject, table
    raise ConfigError(
        f"{cwd}: found neither shards.toml nor a [tool.shardrun] table in pyproject.toml; "
        "create shards.toml here, or pass --config PATH"
    )


def _read(path: Path, cwd: Path) -> dict:
    label = _display(path, cwd)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        _fail(label, f"cannot read the file ({exc.strerror})", "check the path given to --config")
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        _fail(label, f"invalid TOML: {exc}", "fix the syntax there")
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion, with no depth limit
        # of its own, so a few hundred levels exhaust Python's stack.
        what = "invalid TOML: the document is nested too deeply to read"
        _fail(label, what, "nest arrays and inline tables a few levels deep at most")


def _tool_table(data: dict) -> dict | None:
    tool = data.get("tool")
    table = tool.get("shardrun") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else None


def _display(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


# ---- the schema ----------------------------------------------------------------------


def parse(data: Mapping, path: Path, *, cwd: Path | None = None) -> Config:
    cwd = (cwd or Path.cwd()).absolute()
    path = cwd / path
    root = path.parent
    top = f"{_display(path, cwd)}: " + ("tool.shardrun" if path.name == "pyproject.toml" else "")
    _check_keys(data, ("project", "image", "defaults", "shard", "worker", "timings"), top)
    project = _str(data["project"], _join(top, "project")) if "project" in data else root.name
    timings_file = None
    if "timings" in data:
        timings_file = Path(os.path.normpath(root / _str(
            data["timings"], _join(top, "timings"), example='"ci/shardrun-timings.json"')))
    return Config(
        path=path,
        root=root,
        project=project,
        image=_image(data.get("image", {}), _join(top, "image"), root),
        defaults=_run_options(data.get("defaults", {}), _join(top, "defaults"), root),
        shards=_shards(data.get("shard"), _join(top, "shard"), root),
        workers=_workers(data.get("worker", []), _join(top, "worker"), root),
        timings_file=timings_file,
    )


def _image(table: Any, where: str, root: Path) -> ImageSpec:
    table = _table(table, where)
    _check_keys(table, ("dockerfile", "context", "target", "build-args", "tag", "builder"),
                where)
    dockerfile = root / _str(table.get("dockerfile", "Dockerfile.test"), _join(where, "dockerfile"))
    context = root / _str(table.get("context", "."), _join(where, "context"))
    dockerfile, context = Path(os.path.normpath(dockerfile)), Path(os.path.normpath(context))
    _check_path(dockerfile, Path.is_file, "does not exist", _join(where, "dockerfile"))
    _check_path(context, Path.is_dir, "is not a folder", _join(where, "context"))
    opt = {k: _str(table[k], _join(where, k)) for k in ("target", "tag", "builder")
           if k in table}
    build_args = _str_map(table.get("build-args", {}), _join(where, "build-args"))
    return ImageSpec(dockerfile, context, build_args=build_args, **opt)


def _check_path(path: Path, test: Callable[[Path], bool], problem: str, where: str) -> None:
    try:
        ok = test(path)
    except OSError as exc:  # is_file() raises, not answers False, on a name too long
        ok, problem = False, f"cannot be looked up ({exc.strerror})"
    if not ok:  # paths are relative to the config's folder, so say where we looked
        _fail(where, f"{path} {problem}", "create it or fix the path")


# The TOML keys are the RunOptions fields spelled with dashes, listed in the fields' order
# (not the table's) because the "valid keys" hint has always named them so.
_RUN_KEYS = tuple(f.name.replace("_", "-") for f in fields(RunOptions))


def _run_options(table: Any, where: str, root: Path, extra: tuple[str, ...] = ()) -> RunOptions:
    """Parse the RunOptions keys of `table`; `extra` keys are allowed and left to the caller."""
    # Imported here: the table is built from this module's parsers, so it loads after them.
    from shardrun.run_options import BY_KEY

    table = _table(table, where)
    _check_keys(table, _RUN_KEYS + extra, where)
    values: dict[str, Any] = {}
    for key, raw in table.items():  # in the file's order: the first bad key is reported
        if key in BY_KEY:  # not one of `extra`
            option = BY_KEY[key]
            values[option.name] = option.parse(raw, _join(where, key), root)
    return RunOptions(**values)


_NAME = re.compile(r"(?:[A-Za-z0-9._-]|\{index\}|\{total\})+")
# Names become log file names (runs/<run>/<name>.log) and container labels; file systems
# stop at 255 bytes, and a name this long is already unreadable in the live view.
_NAME_MAX = 100
# Each counted shard is a container, and names are expanded eagerly to find duplicates, so
# a slip like count = 10000000000 would hang before the first shard started.
_MAX_COUNT = 1000


def _shards(value: Any, where: str, root: Path) -> tuple[ShardSpec, ...]:
    if value is None or value == []:
        _fail(where, "no shards defined", 'add one: [[shard]] name = "unit" command = "pytest"')
    tables = _array_of_tables(value, where, "[[shard]]")
    specs = [_shard(table, f"{where}[{i}]", root) for i, table in enumerate(tables, 1)]
    # Compare expanded names: "unit-{index}" with count = 2 collides with a shard "unit-1".
    _unique(((n, s.where) for s in specs for n in s.names), "name")
    return tuple(specs)


def _shard(table: Any, where: str, root: Path) -> ShardSpec:
    table = _table(table, where, example='[[shard]] name = "unit"')
    if "name" not in table:
        _check_keys(table, ("name", "count", "split") + _RUN_KEYS, where)  # "nmae" is likelier
        _fail(_join(where, "name"), "missing", 'every [[shard]] needs one, e.g. name = "unit"')
    name = _str(table["name"], _join(where, "name"))
    if not _NAME.fullmatch(name) or not name.strip("."):  # names become file names
        fix = "use letters, digits, '.', '_', '-' and {index}/{total}"
        _fail(_join(where, "name"), f'"{name}" is not a valid shard name', fix)
    named = f'{where} ("{name}")'
    count = None
    per_slot = table.get("count") == "slots"
    if per_slot:
        if "split" not in table:
            _fail(_join(named, "count"), '"slots" needs a split',
                  'add split = ["tests/**/test_*.py"], or give a number')
        if "{index}" not in name:
            _fail(_join(named, "count"), f'one shard per slot would all be named "{name}"',
                  f'put {{index}} in the name, e.g. name = "{name}-{{index}}"')
    elif "count" in table:
        count = _positive(table["count"], _join(named, "count"), int, most=_MAX_COUNT)
    if count and count > 1 and "{index}" not in name:
        fix = f'put {{index}} in the name, e.g. name = "{name}-{{index}}"'
        _fail(_join(named, "count"), f'{count} shards would all be named "{name}"', fix)
    _check_name_length(name, count or 1, _join(where, "name"))
    # Checks the keys too, now that messages can name the shard.
    options = _run_options(table, named, root, extra=("name", "count", "split"))
    globs = _str_list(table["split"], _join(named, "split")) if "split" in table else ()
    if "split" in table and not globs:
        _fail(_join(named, "split"), "is empty", 'list globs, e.g. split = ["tests/**/test_*.py"]')
    for i, glob in enumerate(globs, 1):
        if not glob or glob.startswith("/") or ".." in glob.split("/"):
            _fail(f"{_join(named, 'split')}[{i}]", f'"{glob}" is not a path in the build context',
                  'write globs relative to the context, e.g. "tests/**/test_*.py"')
    return ShardSpec(name, count, options, where=named, split=globs, per_slot=per_slot)


def _check_name_length(name: str, total: int, where: str) -> None:
    # Index and total have the most digits in the last shard, so its name is the longest.
    longest = fill(name, total, total)
    if len(longest) > _NAME_MAX:
        filled = " once {index} and {total} are filled" if longest != name else ""
        what = f"is {len(longest)} characters long{filled}, over the limit of {_NAME_MAX}"
        _fail(where, what, "shorten it: each shard's name is also its log file's name")


def _workers(value: Any, where: str, root: Path) -> tuple[WorkerSpec, ...]:
    tables = _array_of_tables(value, where, "[[worker]]")
    workers = [_worker(t, f"{where}[{i}]", root) for i, t in enumerate(tables, 1)]
    _unique(((w.name, f"{where}[{i}]") for i, w in enumerate(workers, 1) if w.name), "name")
    return tuple(workers)


def _worker(table: Any, where: str, root: Path) -> WorkerSpec:
    table = _table(table, where, example='[[worker]] context = "box2"')
    _check_keys(table, ("name", "context", "host", "slots", "volumes", "required"), where)
    got = {k: _str(table[k], _join(where, k)) for k in ("name", "context", "host") if k in table}
    if ("context" in got) == ("host" in got):
        fix = 'set context = "NAME" (a docker context) or host = "ssh://user@HOST"'
        _fail(where, "needs exactly one of context and host", fix)
    if "host" in got:
        _check_host(got["host"], _join(where, "host"))
    slots = _positive(table["slots"], _join(where, "slots"), int) if "slots" in table else None
    volumes = _volumes(table.get("volumes", []), _join(where, "volumes"), root)
    required = _bool(table["required"], _join(where, "required")) if "required" in table else False
    return WorkerSpec(got.get("name"), got.get("context"), got.get("host"), slots, volumes,
                      required)


def parse_worker_option(value: str) -> WorkerSpec:
    """`--worker VALUE[*SLOTS]`: a docker context name (`default`: the current one) or an
    engine URL, e.g. `ssh://ci@box2*8`."""
    where = f'--worker "{value}"'
    target, star, slots_text = value.partition("*")
    slots = None
    if star:
        if not (slots_text.isascii() and slots_text.isdigit()) or int(slots_text) < 1:
            _fail(where, f'"{slots_text}" is not a slot count', "write e.g. ssh://ci@box2*8")
        slots = int(slots_text)
    if not target:
        _fail(where, "names no worker", "give a docker context name or an engine URL")
    if "://" in target:
        _check_host(target, where)
        return WorkerSpec(name=None, context=None, host=target, slots=slots)
    return WorkerSpec(name=None, context=target, host=None, slots=slots)


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
        _fail(where, f'"{host}" is not a docker host URL', fix)


# Moby's RestrictedNamePattern for volume names.
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def _volumes(value: Any, where: str, root: Path) -> tuple[Volume, ...]:
    specs = enumerate(_str_list(value, where), 1)
    volumes = tuple(_volume(spec, f"{where}[{i}]", root) for i, spec in specs)
    # The engine refuses a container with a "Duplicate mount point"; say so here, earlier.
    _unique(((v.target, f"{where}[{i}]") for i, v in enumerate(volumes, 1)), "target")
    return volumes


def _volume(spec: str, where: str, root: Path) -> Volume:
    parts = spec.split(":")
    mode = parts.pop() if len(parts) == 3 else "rw"
    fix = 'write SOURCE:TARGET[:ro|rw], e.g. "./data:/data:ro" or "cache:/root/.cache"'
    if len(parts) != 2 or mode not in ("ro", "rw") or not all(parts):
        _fail(where, f'"{spec}" is not a volume', fix)
    source, target = parts
    if not target.startswith("/"):
        _fail(where, f'target "{target}" is not an absolute container path', fix)
    if source in (".", "..") or source.startswith(("/", "./", "../", "~")):
        source = os.path.normpath(root / _expand_home(source, where))
    elif not _VOLUME_NAME.fullmatch(source):
        fix = 'start a host path with "/", "./" or "~"'
        _fail(where, f'"{source}" is neither a host path nor a volume name', fix)
    return Volume(source, target, read_only=mode == "ro")


def _expand_home(source: str, where: str) -> Path:
    try:
        return Path(source).expanduser()
    except RuntimeError:  # pathlib's answer to "~nosuchuser", or "~" with no HOME
        home = source.split("/", 1)[0]
        _fail(where, f'cannot find the home folder "{home}" stands for', "write the path out")


# ---- values --------------------------------------------------------------------------

_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}
# Units on every part ("1h30m"), or one bare number of seconds ("90", as a CLI flag gives it).
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+|\d+(?:\.\d+)?")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_MAX_SIZE = 2**63  # sizes are int64 bytes in the Engine API
_SIZE = re.compile(r"(\d+(?:\.\d+)?)(?:([kmgt])(i?b)?|b)?", re.IGNORECASE)


def parse_duration(value: Any, where: str) -> float:
    fix = 'use e.g. "90s", "30m", "1h30m" or a number of seconds'
    text = value.strip().lower() if isinstance(value, str) else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _to_float(value)
    elif _DURATION.fullmatch(text):
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?", text)
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in parts)
    else:
        _fail(where, f"{_describe(value)} is not a duration", fix)
    if not (math.isfinite(seconds) and seconds > 0):
        _fail(where, f"{_describe(value)} is not a positive duration", fix)
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
        _fail(where, f"{_describe(value)} is not a size", fix)
    if size <= 0:
        _fail(where, f"{_describe(value)} is not a positive size", fix)
    if size >= _MAX_SIZE:
        _fail(where, f"{_describe(value)} is too large", "the engine takes sizes below 8 EiB")
    return size


def _to_float(number: float) -> float:
    # tomllib reads integers of any length, and float() raises on one beyond a double.
    try:
        return float(number)
    except OverflowError:
        return math.inf


def _argv(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            _fail(where, f'cannot split "{value}" ({exc})', "close the quote, or write a list")
    else:
        argv = _str_list(value, where)
    if not argv:
        _fail(where, "is empty", 'give the program and its arguments, e.g. ["pytest", "-q"]')
    return argv


# POSIX's portable environment variable names; docker passes others, but a shell cannot.
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_names(value: Any, where: str) -> tuple[str, ...]:
    names = _str_list(value, where)
    for i, name in enumerate(names, 1):
        if not _ENV_NAME.fullmatch(name):
            fix = 'use letters, digits and "_", not starting with a digit, e.g. "API_TOKEN"'
            _fail(f"{where}[{i}]", f'"{name}" is not an environment variable name', fix)
    _unique(((n, f"{where}[{i}]") for i, n in enumerate(names, 1)), "name")
    return names


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        _type_error(value, where, "true or false", "true")
    return value


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    items = _list(value, where, example='["a", "b"]')
    for i, item in enumerate(items, 1):
        if not isinstance(item, str):
            _fail(f"{where}[{i}]", f"expected a string, got {_describe(item)}", "quote it")
    return tuple(items)


def _str_map(value: Any, where: str) -> Mapping[str, str]:
    table = _table(value, where, example='{ KEY = "value" }')
    out = {}
    for key, item in table.items():
        if isinstance(item, bool):
            item = str(item).lower()  # TOML spelling, not Python's "True"
        elif isinstance(item, (int, float)):
            item = str(item)
        out[key] = _str(item, _join(where, key), empty_ok=True)
    return _frozen_map(out)


def _str(value: Any, where: str, example: str = '"text"', empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        _type_error(value, where, "a string", example)
    if not value and not empty_ok:
        _fail(where, "is empty", f"write e.g. {_leaf(where)} = {example}, or remove the key")
    return value


def _positive(
    value: Any, where: str, kind: type | tuple[type, ...], most: float | None = None
) -> Any:
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, kind):  # bool is an int in Python
        _type_error(value, where, "a whole number" if whole else "a number", "4")
    if not value > 0:  # nan too
        _fail(where, f"{value} is not positive", f"use a number {'>= 1' if whole else '> 0'}")
    # Compared, not math.isfinite(): that raises on an int beyond a double, and tomllib
    # reads integers of any length.
    if most is not None and value > most:  # inf too
        _fail(where, f"{value} is too large", f"use a number up to {most}")
    return value


def _list(value: Any, where: str, example: str = "[...]") -> list:
    if not isinstance(value, list):
        _type_error(value, where, "an array", example)
    return value


def _table(value: Any, where: str, example: str = "{ ... }") -> dict:
    if not isinstance(value, dict):
        _type_error(value, where, "a table", example)
    return value


def _array_of_tables(value: Any, where: str, header: str) -> list:
    if not isinstance(value, list):
        _fail(where, f"expected an array of tables, got {_describe(value)}", f"write {header}")
    return value


def _unique(labelled: Iterable[tuple[str, str]], what: str) -> None:
    """Fail on the first repeated key of (key, where) pairs, naming both places."""
    seen: dict[str, str] = {}
    for key, where in labelled:
        if key in seen:
            other = seen[key].split(": ", 1)[-1]  # the file is named once, at the start
            _fail(where, f'{what} "{key}" is also used by {other}', f"make each {what} unique")
        seen[key] = where


def _check_keys(table: Mapping, valid: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            fix = f'did you mean "{close[0]}"?' if close else f"valid keys: {', '.join(valid)}"
            _fail(_join(where, key), "unknown key", fix)


# ---- messages ------------------------------------------------------------------------


def _join(where: str, key: str) -> str:
    return f"{where}{key}" if where.endswith(": ") else f"{where}.{key}"


def _leaf(where: str) -> str:
    return where.rsplit(": ", 1)[-1].rsplit(".", 1)[-1]


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return str(value)


def _type_error(value: Any, where: str, expected: str, example: str) -> NoReturn:
    got = f"expected {expected}, got {_describe(value)}"
    _fail(where, got, f"write e.g. {_leaf(where)} = {example}")


def one_line(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped as in Python.

    Keys and values are quoted as written, and a TOML string may hold any of them: a
    "\\n" in a volume spec must not split the message, nor forge a second line in a log.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _fail(where: str, what: str, fix: str) -> NoReturn:
    raise ConfigError(one_line(f"{where}: {what}; {fix}"))
