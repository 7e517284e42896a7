"""`shardrun build`: the image alone, and for a CI matrix its file and plan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    BuildArgOpt,
    BuilderOpt,
    CacheFromOpt,
    ConfigOpt,
    DebugOpt,
    PlainOpt,
)


@handles_errors
def build(
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    cache_from: CacheFromOpt = None,
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
    no_reuse: Annotated[
        bool,
        typer.Option(
            "--no-reuse",
            help="With --partitions: plan every shard, also those with `reuse = true` "
            "that passed before on the same content.",
        ),
    ] = False,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Build the image and save its tarball; print the image ID and the tarball path (or,
    with --output, the image file's)."""
    from shardrun.cli import engines
    from shardrun.config.load import load, with_overrides
    from shardrun.model.text import counted
    from shardrun.run import build_job
    from shardrun.ui.console import pick_view

    request = build_job.BuildRequest(
        config=with_overrides(load(config), build_arg or (), builder, cache_from or ()),
        output=output,
        partitions=partitions,
        reuse=not no_reuse,
        connect=engines.connect,
    )
    built = build_job.run(request, pick_view(plain)[0])
    print(built.image_id)
    written = built.written
    if written is None:
        print(built.saved.path)
        return
    print(written.path)
    if built.plan is not None:
        plan, total = built.plan, built.plan.total
        print(built.plan_path)
        reused = f" ({len(plan.reused)} more reused)" if plan.reused else ""
        print(
            f"shardrun: {counted(sum(map(len, plan.partitions)), 'shard')}{reused} over "
            f"{counted(total, 'partition')}, "
            f"expected {min(plan.expected):.1f}-{max(plan.expected):.1f}s each; each job runs: "
            f"shardrun run --image {written.path.name} --partition K/{total}",
            file=sys.stderr,
        )
    print(
        f"shardrun: {written.codec}, {written.size / 1e6:.1f} MB of {written.raw_size / 1e6:.1f} MB; "
        f"run it elsewhere with: shardrun run --image {written.path.name}",
        file=sys.stderr,
    )
