"""`shardrun repro SHARD`: one shard as a plain `docker run` the developer can rerun.

The command is printed, then run attached to the terminal through the docker CLI, so a
failing shard can be reproduced, and poked at with `--shell`, exactly as it ran.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from shardrun import history
from shardrun.errors import ConfigError
from shardrun.plan import Shard, from_json
from shardrun.run_options import OPTIONS


@dataclass(frozen=True)
class Recorded:
    """A shard as it ran in a past run: its options, and the image of that run."""

    run_id: str
    shard: Shard
    image_id: str
    worker: str | None  # the worker's name in that run
    worker_url: str | None


def find_recorded(state_dir: Path, name: str, run_id: str | None) -> Recorded | str:
    """The shard as it ran in run `run_id`, or in the latest run where it ran; else why
    not, in words for a one-line note."""
    if run_id is not None:
        candidates = [run_id]
    else:
        runs = state_dir / "runs"
        if not runs.is_dir():
            return f"{name} has not run yet"
        # Run IDs start with their time: newest first.
        candidates = sorted((p.name for p in runs.iterdir()
                             if p.name != "latest" and (p / "report.json").is_file()),
                            reverse=True)
    for candidate in candidates:
        try:
            past = history.load(state_dir, candidate)
        except ConfigError:
            if run_id is not None:
                raise
            continue
        entry = past.shard(name)
        if entry is None:
            continue
        image_id, options = past.report.get("image_id"), entry.get("options")
        if not image_id or not isinstance(options, dict):
            return f"run {candidate} did not record {name}'s options (an older shardrun)"
        try:
            shard = from_json(options)
        except ValueError:
            return f"run {candidate}'s record of {name} cannot be read"
        urls = {w.get("name"): w.get("url") for w in past.report.get("workers", [])}
        return Recorded(candidate, shard, image_id, entry.get("worker"),
                        urls.get(entry.get("worker")))
    where = f"run {run_id}" if run_id else "any recorded run"
    return f"{name} did not run in {where}"


def pick(shards: Sequence[Shard], name: str) -> Shard:
    """The one shard called `name`; a near miss names the closest ones."""
    for shard in shards:
        if shard.name == name:
            return shard
    import difflib

    close = difflib.get_close_matches(name, [s.name for s in shards], n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(f'repro "{name}": no such shard; {hint}shardrun list shows the names')


def docker_run_argv(
    shard: Shard,
    image_id: str,
    labels: Mapping[str, str],
    host: str | None = None,
    interactive: bool = False,
    shell: bool = False,
) -> list[str]:
    """The `docker run` command line for `shard`, with the same options shardrun uses."""
    argv = ["docker"] + (["--host", host] if host else []) + ["run", "--rm"]
    if interactive:
        argv += ["--interactive", "--tty"]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    if shell:  # sh alone: docker drops the image's CMD too once --entrypoint is given
        shard = replace(shard, entrypoint=("sh",), command=None)
    values = [(option, getattr(shard, option.name)) for option in OPTIONS]
    flags = [word for option, value in values for word in option.flags(value)]
    args = [word for option, value in values for word in option.args(value)]
    return argv + flags + [image_id] + args


def printable(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def run_attached(argv: Sequence[str], cwd, env: Mapping[str, str],
                 remove_container: Callable[[], None]) -> int | None:
    """Run the docker CLI attached to this terminal; its exit code, or None if shardrun
    was interrupted (SIGINT or SIGTERM) first.

    Without a terminal, the CLI passes a Ctrl-C on to the container, and a process that
    ignores it (PID 1 ignores SIGINT unless it handles it) keeps running after the CLI
    is gone: so shardrun removes the container itself, then waits for the CLI.
    """
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env))
    interrupted = False

    def interrupt(signum, frame) -> None:
        nonlocal interrupted
        interrupted = True

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        removed = False
        while True:
            try:
                code = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if interrupted and not removed:
                    remove_container()
                    removed = True
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return None if interrupted else code
