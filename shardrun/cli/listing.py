"""`shardrun list`: the shards as they would start, or a CI matrix's partitions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    ConfigOpt,
    DebugOpt,
    PlanOpt,
    ShardOpt,
    partition_option,
)


@handles_errors
def list_shards(
    config: ConfigOpt = None,
    shard: ShardOpt = None,
    partition_text: Annotated[
        str | None,
        partition_option(
            "Show partition K of N of the plan: its shards, files and expected seconds."
        ),
    ] = None,
    plan_path: PlanOpt = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", metavar="FILE", help="The image file the plan lies beside."),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Print the expanded shards, in the order they would start, with their commands; or
    a CI matrix's partitions, from its plan."""
    from shardrun.config.load import load
    from shardrun.image.context_files import split_files
    from shardrun.plan import listing, partition, reused, timings
    from shardrun.plan.make import planned

    cfg = load(config)
    path = partition.find_plan(image, plan_path, needed=partition_text is not None)
    if path is not None:
        plan = partition.load(path)
        index, total = None, plan.total
        if partition_text is not None or partition.in_matrix():
            index, total = partition.parse_partition(partition_text)
        partition.check(plan, total, partition.config_digest(cfg), path)
        # The commands a job will run are its config's, not the plan's (plan_file.py).
        plan = partition.for_config(plan, cfg, path, split_files(cfg))
        for line in listing.partition_lines(plan, str(path), index):
            print(line)
        return
    slots = os.cpu_count() or 1
    shards = planned(cfg, shard, slots, split_files(cfg))
    path = cfg.timings_path
    together = tuple(glob for spec in cfg.shards for glob in spec.together)
    found = listing.lines(
        shards,
        timings.load_files(path),
        slots,
        timings.load_setup(path),
        together,
        reused.would_reuse(cfg, shards, os.environ),
    )
    for line in found:
        print(line)
