"""A partition job's shards: the names and split files its plan assigns it, each shard as
the job's own shards.toml makes it (plan_file.py says why the plan is trusted no further).
Pure: the build context's files are given."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from shardrun.config.spec import Config, ShardSpec
from shardrun.model.options import BY_KEY
from shardrun.model.shard import Shard
from shardrun.plan import split
from shardrun.plan.expand import expand


def from_config(
    config: Config, planned: Sequence[Shard], context_files: Sequence[str] | None
) -> dict[str, Shard]:
    """Every shard of `planned` (names and files, from a plan), as `config` makes it, by
    name. ValueError (a phrase) unless the plan names exactly the shards the config makes
    (a `count = "slots"` split as many groups as the plan has of it), each split group's
    files all matched by its `split` among `context_files`, and no files for the others."""
    wanted = {s.name: s for s in planned}
    found: dict[str, Shard] = {}
    # Fixed names first: a group per slot is told by its name's shape, among the rest.
    for spec in sorted(config.shards, key=lambda s: s.per_slot):
        total = _groups(spec, wanted, found) if spec.per_slot else spec.count or 1
        matched = _matched(spec, context_files)
        shards = expand(dataclasses.replace(config, shards=(spec,)), None, None, total)
        for index, shard in enumerate(shards, 1):
            entry = wanted.get(shard.name)
            if entry is None or shard.name in found:
                raise ValueError(f'it has no shard "{shard.name}", which shards.toml makes')
            found[shard.name] = _given(config, spec, shard, entry.files, (index, total), matched)
    for name in wanted:
        if name not in found:
            raise ValueError(f'its shard "{name}" is not one shards.toml makes')
    return found


def shard_named(config: Config, name: str) -> Shard | None:
    """The config's shard called `name`, or None; a split's group without its files, and
    a group of a `count = "slots"` split told by its name's shape. What `repro` and
    `run --failed` take a recorded shard's mounts and the like from (on_this_host in
    state/shard_record.py): those are the same in every group."""
    for spec in config.shards:
        one = dataclasses.replace(config, shards=(spec,))
        if spec.per_slot:
            if _shape(spec).fullmatch(name):
                return dataclasses.replace(expand(one, None, None, 1)[0], name=name)
            continue
        for shard in expand(one):
            if shard.name == name:
                return shard
    return None


def _shape(spec: ShardSpec) -> re.Pattern[str]:
    """The names of the groups of `spec`, whatever their index and total."""
    return re.compile(
        "".join(
            "[0-9]+" if part in ("{index}", "{total}") else re.escape(part)
            for part in re.split(r"(\{index\}|\{total\})", spec.name)
        )
    )


def _groups(spec: ShardSpec, wanted: Mapping[str, Shard], found: Mapping[str, Shard]) -> int:
    """How many groups the plan has of a `count = "slots"` split: the build job's slots."""
    shape = _shape(spec)
    groups = sum(1 for name in wanted if name not in found and shape.fullmatch(name))
    if not groups:
        raise ValueError(f'it has no group of "{spec.name}", which shards.toml splits')
    return groups


def _matched(spec: ShardSpec, context_files: Sequence[str] | None) -> frozenset[str]:
    if not spec.split:
        return frozenset()
    if context_files is None:
        raise ValueError(f'"{spec.name}" splits files, and no build context was given')
    return frozenset(f for glob in spec.split for f in split.match(context_files, glob))


def _given(
    config: Config,
    spec: ShardSpec,
    shard: Shard,
    files: tuple[str, ...],
    place: tuple[int, int],
    matched: frozenset[str],
) -> Shard:
    """The config's `shard` with the plan's `files` in its {files}."""
    if not spec.split:
        if files:
            raise ValueError(f'it gives files to "{shard.name}", which has no split')
        return shard
    if not files:
        raise ValueError(f'it gives "{shard.name}" no files to run')
    stray = next((f for f in files if f not in matched), None)
    if stray is not None:
        raise ValueError(
            f'it gives "{shard.name}" the file "{stray}", which its split in shards.toml '
            "does not match in this checkout"
        )
    return dataclasses.replace(
        shard,
        files=files,
        command=split.expand_files(_template(config, spec, "command", place), files),
        entrypoint=split.expand_files(_template(config, spec, "entrypoint", place), files),
    )


def _template(
    config: Config, spec: ShardSpec, key: str, place: tuple[int, int]
) -> tuple[str, ...] | None:
    """The shard's `key` (an argv) with [defaults] merged and {index}/{total} filled, as
    expand.py makes it, {files} still in it."""
    option = BY_KEY[key]
    return option.fill(
        option.merge(getattr(config.defaults, key), getattr(spec.options, key)), *place
    )
