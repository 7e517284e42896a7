"""What shards.toml says, as frozen dataclasses: the image, the shard tables, the workers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shardrun.model.shard import RunOptions, Volume, fill, frozen_map
from shardrun.state import layout


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
    # Globs of split files that always go into one group (`split-together`): files that
    # share a setup other than their directory's. Each glob is one such unit.
    together: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        total = self.count or 1
        return tuple(fill(self.name, i, total) for i in range(1, total + 1))


@dataclass(frozen=True)
class ImageSpec:
    dockerfile: Path
    context: Path
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=frozen_map, hash=False)
    tag: str | None = None
    builder: str | None = None  # a [[worker]] name, a docker context or an engine URL
    # Where a build on an engine without this project's build cache finds one: image files
    # (absolute paths) and image references (an ID or tag the builder holds, or a
    # registry's), tried in order (`[image] cache-from`, then `--cache-from`).
    cache_from: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "build_args", frozen_map(self.build_args))


@dataclass(frozen=True)
class WorkerSpec:
    name: str | None
    context: str | None
    host: str | None
    slots: int | None
    volumes: tuple[Volume, ...] = ()
    required: bool = False  # a run that loses it fails (exit 4)
    compress: str = "auto"  # the image's codec in transit: auto, zstd, gzip or none


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
        return self.timings_file or layout.timings(layout.state_dir(self.root))
