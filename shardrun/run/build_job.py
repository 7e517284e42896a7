"""`shardrun build` as one stage: the image alone, its tarball, and for a CI matrix its
image file and the plan beside it. The CLI only parses into `BuildRequest` and prints
what was `Built`."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio import to_thread

from shardrun.config.spec import Config
from shardrun.distribute.artifact import image_file
from shardrun.distribute.artifact.tarball import Artifact
from shardrun.image.context_files import split_files
from shardrun.model.errors import ConfigError
from shardrun.model.events import Emit, Warned
from shardrun.model.shard import Shard
from shardrun.plan import partition, reused
from shardrun.plan.plan_file import Plan
from shardrun.report import github
from shardrun.run import reuse, workflow
from shardrun.run.connect import connect_builder
from shardrun.run.drive import View, run_under, unless_interrupted
from shardrun.run.request import Connect, real_engine
from shardrun.run.workers import Worker
from shardrun.state import files, layout
from shardrun.state.results_record import Passed


@dataclass(frozen=True)
class BuildRequest:
    config: Config  # with --build-arg and --builder applied
    output: Path | None = None  # also the image file for other machines
    partitions: int | None = None  # with output: the plan over N CI jobs, beside it
    reuse: bool = True  # the plan leaves out the shards that passed on this content
    connect: Connect = field(default=real_engine, repr=False)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False)


@dataclass(frozen=True)
class Built:
    image_id: str
    saved: Artifact  # the tarball in the cache
    written: image_file.ImageFile | None = None  # with --output
    plan: Plan | None = None  # with --partitions
    plan_path: Path | None = None
    content: str | None = None  # the image's content digest, when shards may be reused


def run(request: BuildRequest, view: View) -> Built:
    """The usage errors first (ConfigError), then the build, shown in `view`."""
    _check(request)
    return run_under(view, functools.partial(build, request))


def _check(request: BuildRequest) -> None:
    if request.partitions is not None and request.output is None:
        raise ConfigError("--partitions needs --output FILE: the plan goes beside the image file")
    if request.output is not None:
        image_file.codec_of(request.output)
        _ready_to_write(request.output, request.partitions is not None)


async def build(request: BuildRequest, emit: Emit, interrupt: anyio.Event) -> Built:
    """Build on the builder, save the tarball (and the image file), write the plan.
    Interrupted: raises Interrupted."""
    cfg = request.config
    files.make_state_dirs(layout.state_dir(cfg.root))

    async def stages() -> Built:
        engine = await connect_builder(cfg, request.connect)
        # An image file is the next run's --cache-from: it carries the inline cache.
        image_id = await workflow.build_image(cfg, engine, emit, request.output is not None)
        saved, written = await workflow.save_artifact(cfg, engine, image_id, emit, request.output)
        content = None
        if request.partitions is not None and request.reuse:
            content = await to_thread.run_sync(_content, engine, image_id, cfg, emit)
        return Built(image_id, saved, written, content=content)

    built = await unless_interrupted(interrupt, stages)
    if built.written is None or request.partitions is None:
        return built
    # The matrix's plan, beside the image file: the same for every job that reads it.
    plan = partition.make_for(
        cfg,
        request.partitions,
        built.image_id,
        split_files(cfg),
        functools.partial(_passed_before, request, built.content, emit),
    )
    path = partition.beside(built.written.path)
    partition.save(plan, path)
    # For a GitHub matrix of only the partitions with work ("[]": every shard reused).
    github.set_output(
        request.environ.get("GITHUB_OUTPUT"),
        "partitions",
        json.dumps([i for i, part in enumerate(plan.partitions, 1) if part]),
    )
    return Built(built.image_id, built.saved, built.written, plan, path, built.content)


def _content(builder: Worker, image_id: str, cfg: Config, emit: Emit) -> str | None:
    try:
        return reuse.image_content(
            builder.engine, image_id, layout.cache(layout.state_dir(cfg.root))
        )
    except ValueError as exc:
        emit(Warned(message=f"no shard is reused this run: {exc}"))
        return None


def _passed_before(
    request: BuildRequest, content: str | None, emit: Emit, shards: Sequence[Shard]
) -> dict[str, Passed]:
    """The shards that passed on this content: the plan leaves them out."""
    if content is None:
        return {}
    earlier, warning = reused.in_config(request.config, shards, content, request.environ)
    if warning:
        emit(Warned(message=warning))
    return earlier


def _ready_to_write(output: Path, plan: bool) -> None:
    """ConfigError unless a file can be written as `output`; what a killed `build
    --output` left beside it (its temp files) goes."""
    # The file is renamed onto `output` at the end: that fails on a folder (a link is
    # replaced, whatever it names).
    if output.is_dir() and not output.is_symlink():
        raise ConfigError(
            f"--output {output} is a folder; give a file name, such as {output / 'image.tar.zst'}"
        )
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with files.temp_file(output, "the image file", 0):
            pass  # what the image file is written as first, made and removed
    except OSError as exc:
        why = exc.strerror or str(exc)
        if isinstance(exc, (FileExistsError, NotADirectoryError)):
            why = "a file is in the way of its folder"
        raise ConfigError(
            f"--output {output}: no file can be written there ({why}); "
            "give a path in a folder you can write to"
        ) from None
    for final in (output, partition.beside(output)) if plan else (output,):
        files.sweep_stale_temp_beside(final)
