"""`shardrun ci github`: a GitHub Actions workflow for a matrix of partition jobs.

One build job writes the image file and the plan, matrix jobs each run one partition
from them, and a merge job makes one verdict and the next timings. Across runs (issue 27)
two caches carry what the next run needs: the last image file, which makes the build warm
on a runner whose engine is empty, and the state (timings and the record of passed
shards), which lets the build plan only what must run; partitions with nothing to run
start no job at all.

The install line has no default: shardrun is not on PyPI, so the user names a command or
a pinned source, and a git URL without a ref is refused (it would install whatever the
branch holds on the day of each run, so the same workflow would not run the same tool).

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

from shardrun.ci.github_template import IMAGE, SETUP, STATE, TEMPLATE
from shardrun.model.errors import ConfigError

_FIELD = re.compile(r"@[A-Z_]+@")

# GitHub's limit for one matrix. More jobs than shards is fine: a partition the plan
# leaves empty passes with a note, so nothing here depends on the number of shards.
MAX_PARTITIONS = 256
# Long enough for any real command, label or URL, short enough that a slip (a whole file
# pasted into an option) is caught rather than copied into every job.
_MAX_LENGTH = {"--install": 1000, "--install-from": 500, "--runs-on": 200, "--build-arg": 1000}
_MAX_LABELS = 16
# What setup-python takes: 3.12, 3.13-dev, pypy3.10, 3.x; ASCII only.
_PYTHON = re.compile(r"[A-Za-z0-9._+-]{1,40}", re.ASCII)
# shardrun is not on PyPI, so a default `pip install shardrun` failed every generated
# workflow at its first step (issue 27): the user says where it comes from.
_INSTALL_FORMS = (
    "--install-from git+https://github.com/OWNER/shardrun@TAG (or a wheel the repository "
    "keeps: --install-from dist/shardrun-0.1.0-py3-none-any.whl), "
    "or --install 'ONE SHELL LINE'"
)


@dataclass(frozen=True)
class Options:
    partitions: int
    install: str | None = None  # a shell line that installs shardrun
    install_from: str | None = None  # or what `pip install` takes: a pinned git URL, a wheel
    python: str = "3.11"  # a version setup-python knows
    runs_on: tuple[str, ...] = ("ubuntu-latest",)  # one runner label, or several
    build_args: tuple[str, ...] = ()  # KEY=VALUE, as `shardrun build --build-arg`


def workflow(options: Options) -> str:
    import yaml  # only this command needs it: every other one starts without it

    _check(options)
    text, expected = _render(yaml, options)
    # The same template with plain values: the shape the user's values must not change.
    neutral = Options(options.partitions, install="x", runs_on=("x",) * len(options.runs_on))
    _read_back(yaml, text, expected, _render(yaml, neutral)[0])
    return text


def install_line(options: Options) -> str:
    """The line each job runs to install shardrun: --install as given, or `pip install`
    of --install-from, quoted for the shell. Meant for checked options."""
    if options.install_from is None:
        return options.install or ""
    # Always quoted, so a URL's `#egg=` or `&` reaches pip as one word.
    return "pip install '" + options.install_from.replace("'", "'\"'\"'") + "'"


def _render(yaml: Any, options: Options) -> tuple[str, dict[str, Any]]:
    """The workflow, and what each job must read back as its runner, Python, install
    and (the build job's) build command."""
    runs_on: str | list[str] = (
        options.runs_on[0] if len(options.runs_on) == 1 else list(options.runs_on)
    )
    # The restored image file is also the output: the build reads it before replacing it.
    build = (
        f"shardrun build --plain --output image.tar.zst --partitions {options.partitions} "
        "--cache-from image.tar.zst"
    )
    build += "".join(f" --build-arg {shlex.quote(arg)}" for arg in options.build_args)
    install = install_line(options)
    fields = {
        "@PARTITIONS@": str(options.partitions),
        "@PYTHON@": _emitted(yaml, options.python),
        "@INSTALL@": _emitted(yaml, install),
        "@RUNS_ON@": _emitted(yaml, runs_on),
        "@BUILD@": _emitted(yaml, build),
    }
    parts = {"@SETUP@": SETUP, "@STATE@": STATE, "@IMAGE@": IMAGE}
    template = re.sub("|".join(parts), lambda m: parts[m.group()], TEMPLATE)
    # One pass, so a value that happens to spell a field is never replaced in turn.
    text = _FIELD.sub(lambda m: fields[m.group()], template)
    expected = {"runs-on": runs_on, "python": options.python, "install": install}
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
    _check_install(options)
    if len(options.runs_on) > _MAX_LABELS:
        raise ConfigError(f"--runs-on: {len(options.runs_on)} labels; give at most {_MAX_LABELS}")
    for label in options.runs_on:
        _check_text("--runs-on", label, "e.g. --runs-on ubuntu-latest")
    for arg in options.build_args:
        _check_text("--build-arg", arg, "e.g. --build-arg BASE_IMAGE=python:3.12-slim")
        key, equals, _ = arg.partition("=")
        if not (key and equals):
            raise ConfigError(f"--build-arg {_shown(arg)}: write KEY=VALUE")


def _check_install(options: Options) -> None:
    command, spec = options.install, options.install_from
    if command is None and spec is None:
        raise ConfigError(
            f"say how each job installs shardrun (it is not on PyPI): {_INSTALL_FORMS}"
        )
    if command is not None and spec is not None:
        raise ConfigError(f"--install and --install-from: give one of them: {_INSTALL_FORMS}")
    if command is not None:
        _check_text("--install", command, 'e.g. --install "pip install -r ci/shardrun.txt"')
    if spec is not None:
        _check_text(
            "--install-from", spec, "e.g. --install-from git+https://HOST/OWNER/shardrun@TAG"
        )
        _check_spec(spec)


def _check_spec(spec: str) -> None:
    """A pinned git URL, or a wheel: what the same workflow installs the same on every run."""
    problem = ""
    scheme, _, rest = spec.partition("://")
    if any(c.isspace() for c in spec) or spec.startswith("-"):
        problem = "is not one URL or path (a space, or a leading -)"
    elif spec.lower().startswith("git+"):
        host, _, path = rest.split("#", 1)[0].partition("/")
        repo, at, ref = path.rpartition("@")
        if scheme.lower() not in ("git+https", "git+ssh"):
            # git+http:// and git:// let anyone on the way swap the code every job runs.
            problem = "is not a git+https:// or git+ssh:// URL (a server that is authenticated)"
        elif not (host and repo and at and ref.strip("/")):
            problem = (
                "names no @TAG (or commit), so each run would install whatever the default "
                "branch holds then; pin it, e.g. git+https://HOST/OWNER/shardrun@v0.1.0"
            )
    elif not spec.split("#", 1)[0].lower().endswith(".whl"):
        problem = (
            "is neither a git+https:// URL nor a wheel (.whl); for anything else use --install"
        )
    elif rest and scheme.lower() != "https":
        problem = "is a wheel URL that is not https://"
    elif not rest and spec.startswith("/"):
        problem = "is an absolute path; give the wheel's path in the repository"
    if problem:
        raise ConfigError(f"--install-from {_shown(spec)}: {problem}")


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
    builds = [step for step in jobs["build"]["steps"] if step.get("id") == "build"] if same else []
    if not (same and [step["run"] for step in builds] == [expected["build"]]):
        raise RuntimeError("the generated workflow does not read back as it was built")


def _shape(node: Any) -> Any:
    """The keys and list lengths of a parsed document, its scalars left out."""
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return None
