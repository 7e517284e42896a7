"""`shardrun ci github`: a GitHub Actions workflow for a matrix of partition jobs.

One build job writes the image file and the plan, N matrix jobs each run one partition
from them, and a merge job makes one verdict and the next timings. The text is a
template rather than YAML built from data: what users copy is what they read here.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from shardrun.model.errors import ConfigError

# `${{ }}` is GitHub's, so the template's own fields are @NAME@.
# Every job starts the same: the sources, Python, shardrun.
SETUP = """\
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "@PYTHON@"
      - run: @INSTALL@"""
TEMPLATE = """\
# Made by `shardrun ci github --partitions @PARTITIONS@`: one build, @PARTITIONS@ partition jobs, one merge.
name: shardrun

on:
  push:
  pull_request:

permissions:
  contents: read

jobs:
  build:
    runs-on: @RUNS_ON@
    steps:
@SETUP@
      # The merge job saves the timings of every run: the plan is balanced by them.
      - uses: actions/cache/restore@v4
        with:
          path: .shardrun/timings.json
          key: shardrun-timings-${{ github.run_id }}
          restore-keys: shardrun-timings-
      - run: @BUILD@
      - uses: actions/upload-artifact@v4
        with:
          name: shardrun-image
          path: |
            image.tar.zst
            image.plan.json
          compression-level: 0  # zstd already
          retention-days: 1

  shards:
    needs: build
    runs-on: @RUNS_ON@
    strategy:
      fail-fast: false  # every partition reports, so the merge names every failure
      matrix:
        partition: [@INDEXES@]
    steps:
@SETUP@
      - uses: actions/download-artifact@v4
        with:
          name: shardrun-image
      - run: shardrun run --plain --image image.tar.zst --partition ${{ matrix.partition }}/@PARTITIONS@
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: shardrun-partition-${{ matrix.partition }}
          path: .shardrun/runs/
          include-hidden-files: true
          retention-days: 1

  merge:
    needs: [build, shards]
    if: always()  # a failed or lost partition must still fail the merge, by name
    runs-on: @RUNS_ON@
    steps:
@SETUP@
      - uses: actions/download-artifact@v4
        with:
          pattern: shardrun-partition-*
          path: partitions
      - run: shardrun merge --plain partitions
      - if: always() && hashFiles('.shardrun/timings.json') != ''
        uses: actions/cache/save@v4
        with:
          path: .shardrun/timings.json
          key: shardrun-timings-${{ github.run_id }}
      - if: always()
        uses: actions/upload-artifact@v4
        with:
          name: shardrun-report
          path: .shardrun/runs/
          include-hidden-files: true
          retention-days: 1
"""


@dataclass(frozen=True)
class Options:
    partitions: int
    python: str = "3.11"  # a version setup-python knows, quoted in the YAML
    install: str = "pip install shardrun"
    runs_on: str = "ubuntu-latest"
    build_args: tuple[str, ...] = ()  # KEY=VALUE, as `shardrun build --build-arg`


def workflow(options: Options) -> str:
    if not 1 <= options.partitions <= 256:  # GitHub's limit for one matrix
        raise ConfigError(
            f"--partitions {options.partitions}: a GitHub matrix has 1 to 256 jobs; give one"
        )
    for value, what in ((options.install, "--install"), (options.runs_on, "--runs-on")):
        if not value.strip() or "\n" in value:
            raise ConfigError(f'{what} "{value}": give one line, e.g. "pip install shardrun"')
    if not re.fullmatch(r"[\w.+-]+", options.python):
        raise ConfigError(f'--python "{options.python}": give a version, e.g. 3.12')
    for arg in options.build_args:
        if "=" not in arg or "\n" in arg:
            raise ConfigError(f'--build-arg "{arg}": write KEY=VALUE')
    fields = {
        "@SETUP@": SETUP,
        "@PARTITIONS@": str(options.partitions),
        "@INDEXES@": ", ".join(str(k) for k in range(1, options.partitions + 1)),
        "@PYTHON@": options.python,
        "@INSTALL@": _scalar(options.install),
        "@RUNS_ON@": _scalar(options.runs_on),
        "@BUILD@": _scalar(
            f"shardrun build --plain --output image.tar.zst --partitions {options.partitions}"
            + "".join(f" --build-arg {shlex.quote(arg)}" for arg in options.build_args)
        ),
    }
    text = TEMPLATE
    for field, value in fields.items():
        text = text.replace(field, value)
    return text


def _scalar(text: str) -> str:
    """`text` as a YAML value: plain when YAML reads it back unchanged, else quoted (a JSON
    string is a YAML double-quoted one)."""
    plain = (
        text == text.strip()
        and not text.startswith(tuple("!&*-?:,[]{}#|>@`\"'%"))
        and ": " not in text
        and " #" not in text
        and not text.endswith(":")
    )
    return text if plain else json.dumps(text)
