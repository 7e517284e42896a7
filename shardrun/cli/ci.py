"""`shardrun ci github`: print a CI workflow to start from."""

from __future__ import annotations

from typing import Annotated

import typer

from shardrun.cli.errors import handles_errors
from shardrun.cli.options import BuildArgOpt, DebugOpt

app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Print a CI workflow that runs the shards as a matrix of partition jobs.",
)


@app.command()
@handles_errors
def github(
    partitions: Annotated[
        int,
        typer.Option("--partitions", "-n", metavar="N", help="The number of partition jobs."),
    ],
    python: Annotated[
        str, typer.Option("--python", metavar="VERSION", help="The jobs' Python.")
    ] = "3.11",
    install: Annotated[
        str,
        typer.Option(
            "--install", metavar="COMMAND", help="How each job installs shardrun (one line)."
        ),
    ] = "pip install shardrun",
    runs_on: Annotated[
        list[str] | None,
        typer.Option(
            "--runs-on",
            metavar="LABEL",
            help="The jobs' runner label (repeatable: a runner with every label; "
            "default: ubuntu-latest).",
        ),
    ] = None,
    build_arg: BuildArgOpt = None,
    debug: DebugOpt = False,
) -> None:
    """A GitHub Actions workflow: a build job writes the image file and the plan, N
    matrix jobs run one partition each, a merge job gives one verdict and saves the
    timings. Save it as .github/workflows/shardrun.yml."""
    from shardrun.ci.github import Options, workflow

    labels = tuple(runs_on or ("ubuntu-latest",))
    options = Options(partitions, python, install, labels, tuple(build_arg or ()))
    print(workflow(options), end="")
