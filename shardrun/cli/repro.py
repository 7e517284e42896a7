"""`shardrun repro SHARD`: one shard again, attached to this terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import (
    BuildArgOpt,
    BuilderOpt,
    ConfigOpt,
    DebugOpt,
    complete_shards,
    run_option,
)

if TYPE_CHECKING:  # for the annotations only: the command imports them when it runs
    import anyio

    from shardrun.config.spec import Config
    from shardrun.model.events import Emit
    from shardrun.run.request import Connect
    from shardrun.run.workers import Worker


@handles_errors
def repro(
    name: Annotated[
        str,
        typer.Argument(
            metavar="SHARD",
            help="The shard to run, as `shardrun list` names it.",
            autocompletion=complete_shards,
        ),
    ],
    shell: Annotated[
        bool, typer.Option("--shell", help="Start sh in the shard's container instead.")
    ] = False,
    run_id: Annotated[
        str | None,
        run_option(
            "Reproduce the shard as it ran in this run (default: the latest run where it ran)."
        ),
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Build from the current sources instead of using the image that ran."
        ),
    ] = False,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the `docker run` command line and run nothing.")
    ] = False,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            "-w",
            metavar="WORKER",
            help="Run it on this worker: a name from the run, a docker context or a URL.",
        ),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option(
            "--image",
            metavar="FILE",
            help="The image file the run's build job wrote (CI's): loaded where the image is missing.",
        ),
    ] = None,
    config: ConfigOpt = None,
    build_arg: BuildArgOpt = None,
    builder: BuilderOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Run one shard again, exactly as it ran (its image, command, env, mounts), attached
    to this terminal; exit with its exit code."""
    from shardrun.cli import engines
    from shardrun.config.load import load, with_overrides
    from shardrun.repro.reproduce import ReproRequest, reproduce

    request = ReproRequest(
        config=with_overrides(load(config), build_arg or (), builder),
        name=name,
        run_id=run_id,
        fresh=fresh,
        print_only=print_only,
        shell=shell,
        worker=worker,
        image=image,
        connect=engines.connect,
    )
    raise typer.Exit(reproduce(request, _build_quietly))


def _build_quietly(cfg: Config, connect: Connect) -> tuple[Worker, str]:
    """The build of a repro, showing only its verdict, so the shard's own output stands out."""
    from shardrun.run import workflow
    from shardrun.run.connect import connect_builder
    from shardrun.run.drive import run_under, unless_interrupted
    from shardrun.ui.plain import QuietView

    async def work(emit: Emit, interrupt: anyio.Event) -> tuple[Worker, str]:
        async def stages() -> tuple[Worker, str]:
            engine = await connect_builder(cfg, connect)
            return engine, await workflow.build_image(cfg, engine, emit)

        return await unless_interrupted(interrupt, stages)

    return run_under(QuietView(sys.stderr), work)
