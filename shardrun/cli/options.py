"""The options several commands share, with their shell completion.

Completion reads the config (never an engine) and completes nothing on any error: a
completion never prints one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def complete_shards(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shard names for the shell, read from the config (--config, or found from here)."""
    try:
        from shardrun.config.load import load
        from shardrun.plan.expand import expand

        names = [s.name for s in expand(load(ctx.params.get("config")))]
    except Exception:  # noqa: BLE001 - a broken config completes nothing
        return []
    return [name for name in names if name.startswith(incomplete)]


def complete_runs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run IDs under .shardrun/runs of the config's project, newest first."""
    try:
        from shardrun.config.load import load
        from shardrun.report.history import past_runs
        from shardrun.state.layout import state_dir

        ids = [row.run_id for row in past_runs(state_dir(load(ctx.params.get("config")).root))]
    except Exception:  # noqa: BLE001 - as complete_shards
        return []
    return [run_id for run_id in ids if run_id.startswith(incomplete)]


def complete_runs_and_shards(ctx: typer.Context, incomplete: str) -> list[str]:
    return complete_runs(ctx, incomplete) + complete_shards(ctx, incomplete)


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="shards.toml, or a pyproject.toml with [tool.shardrun].",
    ),
]
ShardOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--shard",
        "-s",
        metavar="NAME",
        help="Only shards matching this name or glob (repeatable).",
        autocompletion=complete_shards,
    ),
]
BuildArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--build-arg",
        metavar="KEY=VALUE",
        help="KEY=VALUE, overriding [image] build-args (repeatable).",
    ),
]
BuilderOpt = Annotated[
    str | None,
    typer.Option(
        "--builder",
        metavar="WORKER",
        help="The engine that builds: a [[worker]] name, "
        "a docker context or an engine URL (default: [image] builder, else the current "
        "context).",
    ),
]
CacheFromOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--cache-from",
        metavar="SOURCE",
        help="Build steps to reuse on an engine without this project's build cache: an "
        "image file (`build --output`'s) or an image reference (repeatable; after "
        "[image] cache-from). One that cannot be used is a warning, not a failure.",
    ),
]
PlainOpt = Annotated[
    bool, typer.Option("--plain", help="Timestamped plain lines instead of the live view.")
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")]
WorkerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--worker",
        "-w",
        metavar="WORKER",
        help="A docker context or engine URL (ssh://, tcp://, unix://), optionally *SLOTS; "
        "repeatable; replaces the [[worker]] tables. 'default' is the current context.",
    ),
]


def run_option(help: str) -> object:
    """`--run RUN_ID`, which several commands take with their own help."""
    return typer.Option("--run", metavar="RUN_ID", help=help, autocompletion=complete_runs)


def partition_option(help: str) -> object:
    """`--partition K/N`, which `run` and `list` take with their own help."""
    return typer.Option("--partition", metavar="K/N", help=help)


PlanOpt = Annotated[
    Path | None,
    typer.Option("--plan", metavar="PATH", help="The plan `build --partitions` wrote."),
]
