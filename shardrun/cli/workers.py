"""`shardrun workers`: every worker, whether it answers, and whether it has the image."""

from __future__ import annotations

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import ConfigOpt, DebugOpt, WorkerOpt
from shardrun.model.errors import EXIT_INFRA


@handles_errors
def workers(config: ConfigOpt = None, worker: WorkerOpt = None, debug: DebugOpt = False) -> None:
    """List every worker: reachable or not, engine version, CPUs, slots, the last load's
    codec and link rate, has the image."""
    from shardrun.cli import engines
    from shardrun.config.load import load
    from shardrun.config.workers import parse_worker_option
    from shardrun.run.inventory import survey_workers
    from shardrun.ui.console import table_console
    from shardrun.ui.summary import workers_table

    given = [parse_worker_option(w) for w in worker or ()]
    found = survey_workers(load(config), given, engines.connect)
    table_console().print(workers_table(found.rows, found.image_id, found.links))
    if not found.any_reachable:
        raise typer.Exit(EXIT_INFRA)
