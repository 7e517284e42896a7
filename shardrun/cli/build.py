"""`shardrun build`: the image alone, and for a CI matrix its file and plan."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    BuildArgOpt,
    BuilderOpt,
    ConfigOpt,
    DebugOpt,
    PlainOpt,
)
from shardrun.model.errors import ConfigError


@handles_errors
def build(
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Also write the image as one file for other machines: FILE.tar.zst (zstd), "
            ".tar.gz (gzip) or .tar; `shardrun run --image FILE` runs it.",
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            "--partitions",
            min=1,
            metavar="N",
            help="With --output: also plan the shards over N CI jobs, balanced by recorded "
            "times, into FILE's .plan.json beside it.",
        ),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image and save its tarball; print the image ID and the tarball path (or,
    with --output, the image file's)."""
    from shardrun.config.load import load, with_overrides
    from shardrun.distribute.artifact import image_file
    from shardrun.run import workflow
    from shardrun.run.connect import connect_builder
    from shardrun.run.drive import run_under, unless_interrupted
    from shardrun.state import files
    from shardrun.state.layout import state_dir
    from shardrun.ui.console import pick_view

    cfg = with_overrides(load(config), build_arg or (), builder)
    files.make_state_dirs(state_dir(cfg.root))

    async def work(emit, interrupt):
        async def stages():
            engine = await connect_builder(cfg)
            image_id = await workflow.build_image(cfg, engine, emit)
            saved, written = await workflow.save_artifact(cfg, engine, image_id, emit, output)
            return image_id, saved, written

        return await unless_interrupted(interrupt, stages)

    if partitions is not None and output is None:
        raise ConfigError("--partitions needs --output FILE: the plan goes beside the image file")
    if output is not None:
        image_file.codec_of(output)  # usage errors: before the build
        _ready_to_write(output, partitions is not None)
    image_id, saved, written = run_under(pick_view(plain)[0], work)
    print(image_id)
    if written is None:
        print(saved.path)
        return
    print(written.path)
    if partitions is not None:
        _write_plan(cfg, image_id, written.path, partitions)
    print(
        f"shardrun: {written.codec}, {written.size / 1e6:.1f} MB of {written.raw_size / 1e6:.1f} MB; "
        f"run it elsewhere with: shardrun run --image {written.path.name}",
        file=sys.stderr,
    )


def _ready_to_write(output: Path, plan: bool) -> None:
    """ConfigError unless a file can be written as `output`; what a killed `build
    --output` left beside it (its temp files) goes."""
    from shardrun.plan import partition
    from shardrun.state import files

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


def _write_plan(cfg, image_id: str, output: Path, total: int) -> None:
    """The matrix's plan, beside the image file: the same for every job that reads it."""
    from shardrun.plan import partition, timings
    from shardrun.plan.make import planned

    # A count = "slots" split makes N times this machine's CPUs of groups: the jobs of
    # hosted CI are machines alike.
    shards = planned(cfg, None, total * (os.cpu_count() or 1))
    plan = partition.make(
        shards,
        total,
        timings.load(cfg.timings_path),
        timings.load_files(cfg.timings_path),
        image_id,
        partition.config_digest(cfg),
        timings.load_gap(cfg.timings_path),
        timings.load_setup(cfg.timings_path),
    )
    path = partition.beside(output)
    partition.save(plan, path)
    print(path)
    print(
        f"shardrun: {len(shards)} shards over {total} partitions, expected "
        f"{min(plan.expected):.1f}-{max(plan.expected):.1f}s each; each job runs: "
        f"shardrun run --image {output.name} --partition K/{total}",
        file=sys.stderr,
    )
