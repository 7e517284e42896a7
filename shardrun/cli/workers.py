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
    import anyio

    from shardrun.config.load import load
    from shardrun.config.workers import chosen, parse_worker_option
    from shardrun.distribute.artifact.tarball import latest_image_id
    from shardrun.distribute.worker_facts import WorkerFacts
    from shardrun.run.connect import resolve_workers
    from shardrun.run.inventory import survey
    from shardrun.state.layout import state_dir, workers_file
    from shardrun.ui.console import table_console
    from shardrun.ui.summary import workers_table

    cfg = load(config)
    image_id = latest_image_id(state_dir(cfg.root))
    specs = chosen(cfg, [parse_worker_option(w) for w in worker or ()])
    rows = anyio.run(survey, resolve_workers(specs), image_id)  # may load the SSH transport
    facts = WorkerFacts(workers_file(state_dir(cfg.root)))
    links = {row.url: facts.describe(row.url) for row in rows}
    table_console().print(workers_table(rows, image_id, links))
    if not any(row.reachable for row in rows):
        raise typer.Exit(EXIT_INFRA)
