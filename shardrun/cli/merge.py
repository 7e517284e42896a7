"""`shardrun merge INPUT...`: a CI matrix's partition jobs made into one run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import DebugOpt, PlainOpt
from shardrun.model.errors import ConfigError, InfraError


@handles_errors
def merge(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT...",
            help="The partition jobs' run folders or "
            "report.json files, as downloaded (folders are searched; globs work).",
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="DIR",
            help="Write the merged run here (default: a "
            "new run under .shardrun/runs/ of this folder).",
        ),
    ] = None,
    plain: PlainOpt = False,
    debug: DebugOpt = False,
) -> None:
    """One summary, junit.xml, report.json, exit code and timings for all partitions;
    exit 4 if one never reported, reported twice, or belongs to another plan."""
    from shardrun.report import merge as merging
    from shardrun.report.write import REPORTS
    from shardrun.run.record import save_reports, save_times
    from shardrun.run.request import new_run_id
    from shardrun.state import layout
    from shardrun.ui.console import pick_view
    from shardrun.ui.summary import print_outcome

    partitions = merging.read(merging.find(inputs))
    run_id = f"merged-{new_run_id()}"
    state = layout.state_dir(Path.cwd())
    run_dir = output or layout.run_dir(state, run_id)
    _outside_inputs(run_dir, [p.folder for p in partitions], output is not None)
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot make {run_dir}: {exc.strerror}; give --output a folder that can be written"
        ) from None
    merged = merging.merge(partitions, run_id, run_dir, _take_junit)
    summary = merged.summary
    try:
        save_reports(state, run_dir, summary, latest=output is None)
    except OSError as exc:
        raise InfraError(
            f"cannot write the merged run in {run_dir}: {exc.strerror}; free some space "
            "or give another --output"
        ) from None
    # The next build job's plan starts from these: cache or upload .shardrun/timings.json.
    path = layout.timings(state)
    save_times(path, summary, summary.shards, lambda name: True)
    print_outcome(pick_view(plain)[1], summary, [run_dir / name for name in REPORTS])
    for note in merged.notes:
        print(f"shardrun: {note}", file=sys.stderr)
    print(f"shardrun: merged {len(partitions)} partitions; timings in {path}", file=sys.stderr)
    raise typer.Exit(summary.exit_code)


def _outside_inputs(run_dir: Path, folders: list[Path], given: bool) -> None:
    """The merged run is written apart from what it reads: inside a partition's folder
    it would be copied into itself, or taken for a partition by the next merge."""
    out = run_dir.resolve()
    for folder in folders:
        inner = folder.resolve()
        if out == inner or inner in out.parents or out in inner.parents:
            where = "--output" if given else "the merged run's folder"
            raise ConfigError(
                f"{where} {run_dir} {'holds' if out in inner.parents else 'lies in'} the "
                f"partition folder {folder}; write the merged run apart from its inputs"
                + ("" if given else " (give --output DIR)")
            )


def _take_junit(data: BinaryIO, size: int, target: Path) -> tuple[str | None, str]:
    """A partition's JUnit file, through the intake a run's own JUnit file goes through."""
    from shardrun.run.shard import junit_intake
    from shardrun.run.shard.masking import Masker

    taken = junit_intake.take_in(data, size, target, Masker(), junit_intake.JUNIT_MAX)
    return taken.path, taken.note
