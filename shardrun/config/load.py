"""Read shards.toml (or [tool.shardrun] in pyproject.toml) into frozen dataclasses.

Pure apart from reading the file and checking that the Dockerfile and build context
exist. Every problem is one ConfigError line: `<file>: <key path>: <what>; <fix>`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from shardrun.config.nul import refuse_nul
from shardrun.config.spec import Config, ImageSpec, ShardSpec
from shardrun.config.workers import parse_workers
from shardrun.model.errors import ConfigError
from shardrun.model.shard import RunOptions, fill
from shardrun.model.transit import IMAGE_FILE_SUFFIXES
from shardrun.model.values import (
    as_array_of_tables,
    as_positive,
    as_str,
    as_str_list,
    as_str_map,
    as_table,
    check_keys,
    fail,
    join,
    unique,
)

# ---- loading -------------------------------------------------------------------------


def load(path: Path | None = None, cwd: Path | None = None) -> Config:
    cwd = (cwd or Path.cwd()).absolute()
    if path is None:
        path, data = _discover(cwd)
    else:
        path = cwd / path
        data = _read(path, cwd)
        if path.name == "pyproject.toml":
            table = _tool_table(data)
            if table is None:
                where = f"{_display(path, cwd)}: tool.shardrun"
                fail(where, "no such table", "add [tool.shardrun], or use shards.toml")
            data = table
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
        fail(label, f"cannot read the file ({exc.strerror})", "check the path given to --config")
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        fail(label, f"invalid TOML: {exc}", "fix the syntax there")
    except RecursionError:
        # tomllib parses nested arrays and inline tables by recursion, with no depth limit
        # of its own, so a few hundred levels exhaust Python's stack.
        what = "invalid TOML: the document is nested too deeply to read"
        fail(label, what, "nest arrays and inline tables a few levels deep at most")


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
    refuse_nul(data, top)
    check_keys(data, ("project", "image", "defaults", "shard", "worker", "timings"), top)
    project = as_str(data["project"], join(top, "project")) if "project" in data else root.name
    timings_file = None
    if "timings" in data:
        timings_file = Path(
            os.path.normpath(
                root
                / as_str(
                    data["timings"], join(top, "timings"), example='"ci/shardrun-timings.json"'
                )
            )
        )
    return Config(
        path=path,
        root=root,
        project=project,
        image=_image(data.get("image", {}), join(top, "image"), root),
        defaults=_run_options(data.get("defaults", {}), join(top, "defaults"), root),
        shards=_shards(data.get("shard"), join(top, "shard"), root),
        workers=parse_workers(data.get("worker", []), join(top, "worker"), root),
        timings_file=timings_file,
    )


def _image(table: Any, where: str, root: Path) -> ImageSpec:
    table = as_table(table, where)
    check_keys(
        table,
        ("dockerfile", "context", "target", "build-args", "tag", "builder", "cache-from"),
        where,
    )
    dockerfile = root / as_str(
        table.get("dockerfile", "Dockerfile.test"), join(where, "dockerfile")
    )
    context = root / as_str(table.get("context", "."), join(where, "context"))
    dockerfile, context = Path(os.path.normpath(dockerfile)), Path(os.path.normpath(context))
    _check_path(dockerfile, Path.is_file, "does not exist", join(where, "dockerfile"))
    _check_path(context, Path.is_dir, "is not a folder", join(where, "context"))
    opt = {k: as_str(table[k], join(where, k)) for k in ("target", "tag", "builder") if k in table}
    build_args = as_str_map(table.get("build-args", {}), join(where, "build-args"))
    cache_from = table.get("cache-from", [])
    cache_from = as_str_list(
        [cache_from] if isinstance(cache_from, str) else cache_from, join(where, "cache-from")
    )
    return ImageSpec(
        dockerfile,
        context,
        build_args=build_args,
        cache_from=tuple(cache_source(s, root) for s in cache_from),
        **opt,
    )


def cache_source(value: str, base: Path) -> str:
    """An image file as an absolute path (relative ones are to `base`: the config's folder,
    or the working directory for `--cache-from`); anything else is an image reference."""
    path = base / value
    if value.endswith(tuple(IMAGE_FILE_SUFFIXES)) or os.path.lexists(path):
        return os.path.normpath(path)
    return value


def _check_path(path: Path, test: Callable[[Path], bool], problem: str, where: str) -> None:
    try:
        ok = test(path)
    except OSError as exc:  # is_file() raises, not answers False, on a name too long
        ok, problem = False, f"cannot be looked up ({exc.strerror})"
    if not ok:  # paths are relative to the config's folder, so say where we looked
        fail(where, f"{path} {problem}", "create it or fix the path")


# The TOML keys are the RunOptions fields spelled with dashes, listed in the fields' order
# (not the table's) because the "valid keys" hint has always named them so.
_RUN_KEYS = tuple(f.name.replace("_", "-") for f in fields(RunOptions))


def _run_options(table: Any, where: str, root: Path, extra: tuple[str, ...] = ()) -> RunOptions:
    """Parse the RunOptions keys of `table`; `extra` keys are allowed and left to the caller."""
    # Imported here: the table is built from this module's parsers, so it loads after them.
    from shardrun.model.options import BY_KEY

    table = as_table(table, where)
    check_keys(table, _RUN_KEYS + extra, where)
    values: dict[str, Any] = {}
    for key, raw in table.items():  # in the file's order: the first bad key is reported
        if key in BY_KEY:  # not one of `extra`
            option = BY_KEY[key]
            values[option.name] = option.parse(raw, join(where, key), root)
    for name in values.get("env", {}):
        _check_env_name(name, join(where, "env"))
    return RunOptions(**values)


def _check_env_name(name: str, where: str) -> None:
    # Docker takes any name but an empty one or one with "=" (NAME=VALUE is how the
    # engine passes it): either would set some other variable, or none.
    if not name or "=" in name:
        fix = 'use a name without "=", e.g. API_TOKEN = "..."'
        fail(where, f'"{name}" is not an environment variable name', fix)


_NAME = re.compile(r"(?:[A-Za-z0-9._-]|\{index\}|\{total\})+")
# Names become log file names (runs/<run>/<name>.log) and container labels; file systems
# stop at 255 bytes, and a name this long is already unreadable in the live view.
_NAME_MAX = 100
# Each counted shard is a container, and names are expanded eagerly to find duplicates, so
# a slip like count = 10000000000 would hang before the first shard started.
_MAX_COUNT = 1000


def _shards(value: Any, where: str, root: Path) -> tuple[ShardSpec, ...]:
    if value is None or value == []:
        fail(where, "no shards defined", 'add one: [[shard]] name = "unit" command = "pytest"')
    tables = as_array_of_tables(value, where, "[[shard]]")
    specs = [_shard(table, f"{where}[{i}]", root) for i, table in enumerate(tables, 1)]
    # Compare expanded names: "unit-{index}" with count = 2 collides with a shard "unit-1".
    unique(((n, s.where) for s in specs for n in s.names), "name")
    return tuple(specs)


_SHARD_KEYS = ("name", "count", "split", "split-together")


def _shard(table: Any, where: str, root: Path) -> ShardSpec:
    table = as_table(table, where, example='[[shard]] name = "unit"')
    if "name" not in table:
        check_keys(table, _SHARD_KEYS + _RUN_KEYS, where)  # "nmae" is likelier
        fail(join(where, "name"), "missing", 'every [[shard]] needs one, e.g. name = "unit"')
    name = as_str(table["name"], join(where, "name"))
    if not _NAME.fullmatch(name) or not name.strip("."):  # names become file names
        fix = "use letters, digits, '.', '_', '-' and {index}/{total}"
        fail(join(where, "name"), f'"{name}" is not a valid shard name', fix)
    named = f'{where} ("{name}")'
    count = None
    per_slot = table.get("count") == "slots"
    if per_slot:
        if "split" not in table:
            fail(
                join(named, "count"),
                '"slots" needs a split',
                'add split = ["tests/**/test_*.py"], or give a number',
            )
        if "{index}" not in name:
            fail(
                join(named, "count"),
                f'one shard per slot would all be named "{name}"',
                f'put {{index}} in the name, e.g. name = "{name}-{{index}}"',
            )
    elif "count" in table:
        count = as_positive(table["count"], join(named, "count"), int, most=_MAX_COUNT)
    if count and count > 1 and "{index}" not in name:
        fix = f'put {{index}} in the name, e.g. name = "{name}-{{index}}"'
        fail(join(named, "count"), f'{count} shards would all be named "{name}"', fix)
    _check_name_length(name, count or 1, join(where, "name"))
    # Checks the keys too, now that messages can name the shard.
    options = _run_options(table, named, root, extra=_SHARD_KEYS)
    globs = _globs(table, "split", named)
    if "split" in table and not globs:
        fail(join(named, "split"), "is empty", 'list globs, e.g. split = ["tests/**/test_*.py"]')
    together = _globs(table, "split-together", named)
    if together and not globs:
        fail(
            join(named, "split-together"),
            "without a split",
            'add split = ["tests/**/test_*.py"], or remove split-together',
        )
    return ShardSpec(
        name, count, options, where=named, split=globs, per_slot=per_slot, together=together
    )


def _globs(table: Mapping[str, Any], key: str, named: str) -> tuple[str, ...]:
    """A list of globs of paths in the build context."""
    globs = as_str_list(table[key], join(named, key)) if key in table else ()
    for i, glob in enumerate(globs, 1):
        if not glob or glob.startswith("/") or ".." in glob.split("/"):
            fail(
                f"{join(named, key)}[{i}]",
                f'"{glob}" is not a path in the build context',
                'write globs relative to the context, e.g. "tests/**/test_*.py"',
            )
    return tuple(globs)


def _check_name_length(name: str, total: int, where: str) -> None:
    # Index and total have the most digits in the last shard, so its name is the longest.
    longest = fill(name, total, total)
    if len(longest) > _NAME_MAX:
        filled = " once {index} and {total} are filled" if longest != name else ""
        what = f"is {len(longest)} characters long{filled}, over the limit of {_NAME_MAX}"
        fail(where, what, "shorten it: each shard's name is also its log file's name")


def with_overrides(
    config: Config,
    build_args: Sequence[str] = (),
    builder: str | None = None,
    cache_from: Sequence[str] = (),
) -> Config:
    """The config with the command line's `--build-arg KEY=VALUE`s, `--builder` and
    `--cache-from`s (after the config's own)."""
    if builder:
        config = replace(config, image=replace(config.image, builder=builder))
    if cache_from:
        sources = (*config.image.cache_from, *(cache_source(s, Path.cwd()) for s in cache_from))
        config = replace(config, image=replace(config.image, cache_from=sources))
    if not build_args:
        return config
    overrides = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f'--build-arg "{item}": expected KEY=VALUE, e.g. BASE_IMAGE=debian')
        overrides[key] = value
    image = replace(config.image, build_args={**config.image.build_args, **overrides})
    return replace(config, image=image)
