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
        str | None,
        typer.Option(
            "--install",
            metavar="COMMAND",
            help="How each job installs shardrun: one shell line. This or --install-from "
            "is needed (shardrun is not on PyPI).",
        ),
    ] = None,
    install_from: Annotated[
        str | None,
        typer.Option(
            "--install-from",
            metavar="SPEC",
            help="Or each job runs pip install 'SPEC': a pinned git URL "
            "(git+https://HOST/OWNER/shardrun@TAG) or a wheel (.whl) the repository keeps.",
        ),
    ] = None,
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
    """A GitHub Actions workflow: a build job writes the image file and the plan (warm
    from the last image, planning only what did not pass before), matrix jobs run the
    partitions that have shards to run, a merge job gives one verdict and saves the
    timings and the record of passed shards. Save it as .github/workflows/shardrun.yml."""
    from shardrun.ci.github import Options, workflow

    options = Options(
        partitions,
        install=install,
        install_from=install_from,
        python=python,
        runs_on=tuple(runs_on or ("ubuntu-latest",)),
        build_args=tuple(build_arg or ()),
    )
    print(workflow(options), end="")
