"""`shardrun ci github`: a GitHub Actions workflow for a matrix of partition jobs.

One build job writes the image file and the plan, N matrix jobs each run one partition
from them, and a merge job makes one verdict and the next timings.

The options are strings from a user or a template, and what they become runs with the
repository's token, so none of them may add a key, a step or an expression (issue 25):

- each value is checked first: one line of printable text (no control character, line or
  paragraph separator, bidi or other format character, which YAML parsers disagree on), no
  `${{` (GitHub evaluates an expression inside any string, quoted or not), a sane length;
- each value is written by PyYAML's emitter, which quotes and escapes it for the exact
  place it takes (a block mapping's value, or a flow list for several `--runs-on`) and
  leaves it plain only where YAML reads it back unchanged;
- the text is read back and must have the template's shape, key for key and step for
  step, with every value verbatim in its place: a mismatch is a bug, never a workflow.

The fixed part stays a template rather than data dumped whole: its comments say why the
jobs are shaped so, and what users copy is what they read here. The values are the only
thing that varies, and they are built, not pasted.
"""

from __future__ import annotations

import math
import re
import shlex
import unicodedata
from dataclasses import dataclass
from typing import Any

from shardrun.model.errors import ConfigError

# `${{ }}` is GitHub's, so the template's own fields are @NAME@.
# Every job starts the same: the sources, Python, shardrun.
SETUP = """\
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: @PYTHON@
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
_FIELD = re.compile(r"@[A-Z_]+@")

# GitHub's limit for one matrix. More jobs than shards is fine: a partition the plan
# leaves empty passes with a note, so nothing here depends on the number of shards.
MAX_PARTITIONS = 256
# Long enough for any real command or label, short enough that a slip (a whole file
# pasted into an option) is caught rather than copied into every job.
_MAX_LENGTH = {"--install": 1000, "--runs-on": 200, "--build-arg": 1000}
_MAX_LABELS = 16
# What setup-python takes: 3.12, 3.13-dev, pypy3.10, 3.x; ASCII only.
_PYTHON = re.compile(r"[A-Za-z0-9._+-]{1,40}", re.ASCII)


@dataclass(frozen=True)
class Options:
    partitions: int
    python: str = "3.11"  # a version setup-python knows
    install: str = "pip install shardrun"
    runs_on: tuple[str, ...] = ("ubuntu-latest",)  # one runner label, or several
    build_args: tuple[str, ...] = ()  # KEY=VALUE, as `shardrun build --build-arg`


def workflow(options: Options) -> str:
    import yaml  # only this command needs it: every other one starts without it

    _check(options)
    text, expected = _render(yaml, options)
    # The same template with plain values: the shape the user's values must not change.
    neutral = Options(options.partitions, runs_on=("x",) * len(options.runs_on))
    _read_back(yaml, text, expected, _render(yaml, neutral)[0])
    return text


def _render(yaml: Any, options: Options) -> tuple[str, dict[str, Any]]:
    """The workflow, and what each job must read back as its runner, Python, install
    and (the build job's) build command."""
    runs_on: str | list[str] = (
        options.runs_on[0] if len(options.runs_on) == 1 else list(options.runs_on)
    )
    build = f"shardrun build --plain --output image.tar.zst --partitions {options.partitions}"
    build += "".join(f" --build-arg {shlex.quote(arg)}" for arg in options.build_args)
    fields = {
        "@PARTITIONS@": str(options.partitions),
        "@INDEXES@": ", ".join(str(k) for k in range(1, options.partitions + 1)),
        "@PYTHON@": _emitted(yaml, options.python),
        "@INSTALL@": _emitted(yaml, options.install),
        "@RUNS_ON@": _emitted(yaml, runs_on),
        "@BUILD@": _emitted(yaml, build),
    }
    # One pass, so a value that happens to spell a field is never replaced in turn.
    text = _FIELD.sub(lambda m: fields[m.group()], TEMPLATE.replace("@SETUP@", SETUP))
    expected = {"runs-on": runs_on, "python": options.python, "install": options.install}
    return text, {**expected, "build": build}


# ---- the values ------------------------------------------------------------------------


def _check(options: Options) -> None:
    if not 1 <= options.partitions <= MAX_PARTITIONS:
        raise ConfigError(
            f"--partitions {options.partitions}: a GitHub matrix has 1 to {MAX_PARTITIONS} "
            "jobs; give one"
        )
    if not _PYTHON.fullmatch(options.python):
        raise ConfigError(f"--python {_shown(options.python)}: give a version, e.g. 3.12")
    _check_text("--install", options.install, 'e.g. --install "pip install shardrun"')
    if len(options.runs_on) > _MAX_LABELS:
        raise ConfigError(f"--runs-on: {len(options.runs_on)} labels; give at most {_MAX_LABELS}")
    for label in options.runs_on:
        _check_text("--runs-on", label, "e.g. --runs-on ubuntu-latest")
    for arg in options.build_args:
        _check_text("--build-arg", arg, "e.g. --build-arg BASE_IMAGE=python:3.12-slim")
        key, equals, _ = arg.partition("=")
        if not (key and equals):
            raise ConfigError(f"--build-arg {_shown(arg)}: write KEY=VALUE")


def _check_text(option: str, value: str, example: str) -> None:
    problem, fix = "", f"give one line of printable text, {example}"
    hidden = next((c for c in value if not c.isprintable()), None)
    if not value.strip():
        problem = "is empty"
    elif len(value) > _MAX_LENGTH[option]:
        problem = f"is {len(value)} characters long, over the limit of {_MAX_LENGTH[option]}"
    elif hidden is not None:
        name = unicodedata.name(hidden, "a control or unassigned character")
        problem = f"holds U+{ord(hidden):04X} ({name}), which could end or disguise the value"
    elif "${{" in value:
        problem = "holds ${{, which GitHub evaluates as an expression even inside quotes"
        fix = "write the value itself, or add the expression to the saved workflow by hand"
    if problem:
        raise ConfigError(f"{option} {_shown(value)}: {problem}; {fix}")


def _shown(value: str) -> str:
    """`value` for a one-line message: Python's spelling (every control character
    escaped), cut short."""
    return repr(value) if len(value) <= 60 else f"{value[:50]!r}... ({len(value)} characters)"


# ---- the YAML --------------------------------------------------------------------------


def _emitted(yaml: Any, value: str | list[str]) -> str:
    """`value` as PyYAML writes it as a block mapping's value (a list as a flow list): the
    place each field takes in the template."""
    text = yaml.dump(
        {"v": value},
        Dumper=yaml.SafeDumper,
        width=math.inf,  # never folded onto a second line
        allow_unicode=True,  # letters as they are; the checks let no control through
        # A list of labels as [a, b]; None also makes {"v": "x"} a flow mapping, whose
        # quoting rules are not a block value's.
        default_flow_style=None if isinstance(value, list) else False,
        sort_keys=False,
    )
    line = text.removeprefix("v: ").removesuffix("\n")
    if "\n" in line or not text.startswith("v: "):
        raise RuntimeError(f"PyYAML wrote {text!r} for one value")
    return line


def _read_back(yaml: Any, text: str, expected: dict[str, Any], neutral: str) -> None:
    """`text` must parse to the shape of `neutral`, key for key and step for step, with
    `expected` in each job: the last guard against a value that adds a key or a step."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    flow = yaml.load(text, Loader=loader)
    same = _shape(flow) == _shape(yaml.load(neutral, Loader=loader))
    jobs = flow["jobs"] if same else {}
    for job in jobs.values():
        steps = job["steps"]
        same = same and (
            job["runs-on"] == expected["runs-on"]
            and steps[1]["with"]["python-version"] == expected["python"]
            and steps[2]["run"] == expected["install"]
        )
    if not (same and jobs["build"]["steps"][4]["run"] == expected["build"]):
        raise RuntimeError("the generated workflow does not read back as it was built")


def _shape(node: Any) -> Any:
    """The keys and list lengths of a parsed document, its scalars left out."""
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return None
