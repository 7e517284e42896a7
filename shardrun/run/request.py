"""What a run is asked to do: one frozen request, built by the CLI, read by every stage."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shardrun.config.spec import Config, WorkerSpec
from shardrun.config.workers import chosen
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.state import layout

if TYPE_CHECKING:  # the Docker client: an empty partition's job never imports it
    from shardrun.engine.api import Engine
    from shardrun.engine.endpoints import Endpoint

# How a command gets an engine for an endpoint (endpoints.connect's arguments: the pool's
# concurrency, the first answer's timeout, later calls' timeout). The one seam between a
# command and Docker: tests give fake engines here and run the real CLI end to end.
Connect = Callable[["Endpoint", int, int, "int | None"], "Engine"]


def real_engine(
    endpoint: Endpoint, concurrency: int, timeout: int, call_timeout: int | None
) -> Engine:
    """The Docker engine at `endpoint` (engine.endpoints.connect, imported when first used)."""
    from shardrun.engine.endpoints import connect

    return connect(endpoint, concurrency, timeout, call_timeout)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunRequest:
    config: Config
    shards: tuple[Shard, ...]  # selected and in the order to start them
    jobs: int | None = None  # at most this many containers at once, over all workers
    retries: int = 0
    workers: tuple[WorkerSpec, ...] = ()  # config.workers.chosen(); () is the config's
    fail_fast: bool = False  # after a shard fails its tests, no queued shard starts
    keep_failed: bool = False  # failed shards' stopped containers stay, for a look inside
    reuse: bool = True  # shards with `reuse = true` that passed on the same content are not run
    # Run this image file (`build --output`'s) instead of building: hosted CI's jobs.
    image_file: Path | None = None
    # Or run this image, already on the build engine (an ID or a tag), instead of building.
    image_ref: str | None = None
    expected_image: str | None = None  # the plan's image: the file must hold it
    # Its place in a CI matrix, for the report: {"index": K, "total": N, "plan": digest}.
    partition: Mapping[str, object] | None = field(default=None, hash=False)
    # The plan again for the run's slot count, once the workers are connected (a split
    # with count = "slots"); None: `shards` stands.
    replan: Callable[[int], list[Shard]] | None = field(default=None, repr=False)
    # The values of the shards' secret-env names, from this process's environment. Never
    # written anywhere by shardrun: kept out of repr, reports and messages.
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)
    run_id: str = field(default_factory=new_run_id)
    # Makes the builder's and the workers' engines (the watchdog, a process of its own,
    # always connects for real).
    connect: Connect = field(default=real_engine, repr=False, compare=False)

    @property
    def state_dir(self) -> Path:
        return layout.state_dir(self.config.root)

    @property
    def worker_specs(self) -> tuple[WorkerSpec, ...]:
        return self.workers or chosen(self.config)

    @property
    def run_dir(self) -> Path:
        return layout.run_dir(self.state_dir, self.run_id)


def read_secrets(shards: tuple[Shard, ...], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of every `secret-env` name the shards use, from `environ`."""
    values: dict[str, str] = {}
    for shard in shards:
        for name in shard.secret_env:
            if name not in environ:
                raise ConfigError(
                    f'shard "{shard.name}": secret-env {name} is not set in this environment; '
                    f"export {name} before running shardrun (its value is passed to the "
                    "container only, never written or printed)"
                )
            values[name] = environ[name]
    return values
