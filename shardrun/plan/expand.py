"""Turn a Config into the list of shards to run: expand, select, order. Pure."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import replace

from shardrun.config.spec import Config, ShardSpec
from shardrun.model.errors import ConfigError
from shardrun.model.options import OPTIONS
from shardrun.model.shard import RunOptions, Shard, Volume, fill
from shardrun.model.text import counted
from shardrun.model.values import fail
from shardrun.plan import affinity, split
from shardrun.plan.affinity import NO_SETUP, Setup


def expand(
    config: Config,
    context_files: Sequence[str] | None = None,
    file_times: Mapping[str, float] | None = None,
    slots: int = 1,
    setup: Setup = NO_SETUP,
) -> list[Shard]:
    """Every [[shard]] in file order; `count = N` gives N shards with {index} 1..N.

    A shard with `split` gets a group of the build context's files (`context_files`,
    after .dockerignore) matching its globs, balanced by `file_times`, in `{files}`;
    `count = "slots"` makes one group per slot of the run (`slots`), or per file when
    there are fewer files.
    """
    shards = []
    for spec in config.shards:
        merged = _merge(config.defaults, spec.options)
        _check_merged(spec, merged)
        groups = _split(spec, merged, context_files, file_times or {}, max(slots, 1), setup)
        total = len(groups) if groups is not None else spec.count or 1
        for index in range(1, total + 1):
            shard = _instantiate(spec.name, merged, index, total, spec.options.reuse is True)
            if groups is not None:
                files = tuple(groups[index - 1])
                shard = replace(
                    shard,
                    files=files,
                    command=split.expand_files(shard.command, files),
                    entrypoint=split.expand_files(shard.entrypoint, files),
                )
            shards.append(shard)
    return shards


def _matched(spec: ShardSpec, context_files: Sequence[str]) -> list[str]:
    where = spec.where or f'shard "{spec.name}"'
    matched: list[str] = []
    for glob in spec.split:
        found = split.match(context_files, glob)
        if not found:
            fail(
                f"{where}.split",
                f'"{glob}" matches no file in the build context',
                "fix the glob (it is relative to the context, after .dockerignore)",
            )
        matched.extend(found)
    return list(dict.fromkeys(matched))


def _split(
    spec: ShardSpec,
    merged: RunOptions,
    context_files: Sequence[str] | None,
    file_times: Mapping[str, float],
    slots: int,
    setup: Setup,
) -> list[list[str]] | None:
    """The shard's groups of files (None without `split`): `count` of them, or one per
    slot (per file, when fewer)."""
    where = spec.where or f'shard "{spec.name}"'
    uses = split.mentions_files(merged.command) or split.mentions_files(merged.entrypoint)
    if not spec.split:
        if uses:
            fail(
                where,
                "{files} in its command, but no split",
                'add split = ["tests/**/test_*.py"] (the files to share out)',
            )
        return None
    if not uses:
        fail(
            where,
            "split, but no {files} in its command or entrypoint",
            'put {files} where the files go, e.g. command = "pytest -q {files}"',
        )
    total = slots if spec.per_slot else spec.count or 1
    if context_files is None:
        return [[] for _ in range(total)]  # not asked for (e.g. `shardrun list` of names)
    files = _matched(spec, context_files)
    if spec.per_slot:
        total = min(total, len(files))
    if len(files) < total:
        fail(
            f"{where}.count",
            f"{counted(total, 'group')} of {counted(len(files), 'file')}",
            f"lower count to at most {len(files)}",
        )
    for i, glob in enumerate(spec.together, 1):
        if not split.match(files, glob):
            fail(
                f"{where}.split-together[{i}]",
                f'"{glob}" matches none of the split\'s files',
                "fix the glob: it picks among the files split matched",
            )
    return affinity.groups(files, total, file_times, setup, spec.together)


def _merge(defaults: RunOptions, own: RunOptions) -> RunOptions:
    return RunOptions(
        **{o.name: o.merge(getattr(defaults, o.name), getattr(own, o.name)) for o in OPTIONS}
    )


def _check_merged(spec: ShardSpec, merged: RunOptions) -> None:
    where = spec.where or f'shard "{spec.name}"'  # a ShardSpec built by hand has no where
    _check_secret_env(merged, where)
    _check_docker_socket(merged, where)


def _check_secret_env(options: RunOptions, where: str) -> None:
    # Which value would the container get? Neither answer is safe to guess.
    for name in options.secret_env:
        if name in options.env:
            what = f'"{name}" is in both secret-env and env (after merging [defaults])'
            fail(where, what, "keep it in one: env sets the value, secret-env passes the host's")


def _check_docker_socket(options: RunOptions, where: str) -> None:
    # Whoever holds the engine's socket is root on the host, so mounting it must be asked
    # for in words, not slip in with a volume list copied from elsewhere.
    if options.docker_socket:
        return
    for volume in options.volumes:
        if volume.gives_engine:
            what = f"volume {volume.source}:{volume.target} gives the container the Docker engine"
            fix = "set docker-socket = true in this [[shard]] (or [defaults]) if it really needs it"
            fail(where, what, fix)


def _instantiate(
    template: str, options: RunOptions, index: int, total: int, reuse_own: bool
) -> Shard:
    values = {o.name: o.fill(getattr(options, o.name), index, total) for o in OPTIONS}
    return Shard(name=fill(template, index, total), reuse_own=reuse_own, **values)


def select(
    shards: Sequence[Shard], patterns: Sequence[str], source: str = "--shard"
) -> list[Shard]:
    """Shards whose name matches any glob, in shard order; no patterns means all of them."""
    if not patterns:
        return list(shards)
    for pattern in patterns:
        # Case-sensitive on every OS, like the names themselves (fnmatch.fnmatch is not).
        if not any(fnmatch.fnmatchcase(s.name, pattern) for s in shards):
            raise ConfigError(
                f'{source} "{pattern}": matches no shard; shardrun list shows the names'
            )
    return [s for s in shards if any(fnmatch.fnmatchcase(s.name, p) for p in patterns)]


def order(shards: Sequence[Shard], durations: Mapping[str, float]) -> list[Shard]:
    """Longest recorded first, so the long tail starts early; unknown shards go first.

    An unrecorded shard may be the longest of all, and starting it early costs little.
    sorted() is stable, so ties and unrecorded shards keep their file order.
    """

    def key(shard: Shard) -> tuple[bool, float]:
        if shard.name not in durations:
            return (False, 0.0)
        return (True, -durations[shard.name])

    return sorted(shards, key=key)


def for_worker(shard: Shard, worker_volumes: Sequence[Volume]) -> Shard:
    """The shard as it runs on a worker whose own volumes replace those on the same target
    (host paths differ between machines)."""
    if not worker_volumes:
        return shard
    targets = {v.target for v in worker_volumes}
    volumes = tuple(v for v in shard.volumes if v.target not in targets) + tuple(worker_volumes)
    return replace(shard, volumes=volumes)


def check_remote_binds(
    shards: Sequence[Shard], workers: Sequence[tuple[str, bool, Sequence[Volume]]]
) -> None:
    """A host path means nothing on a remote worker unless that worker declares the mount.

    `workers` holds (name, is_remote, volumes). Any shard may run on any worker, so every
    pair is checked before the first shard starts.
    """
    for name, remote, volumes in workers:
        if not remote:
            continue
        declared = {v.target for v in volumes}
        for shard in shards:
            for volume in shard.volumes:
                if volume.is_bind and volume.target not in declared:
                    raise ConfigError(
                        f'shard "{shard.name}" bind-mounts host path {volume.source} at '
                        f"{volume.target}, but worker {name} is remote and does not declare "
                        f'that mount; add volumes = ["/path/on/{name}:{volume.target}"] to its '
                        "[[worker]], or use a named volume"
                    )
