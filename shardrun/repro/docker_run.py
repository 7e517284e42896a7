"""One shard as a plain `docker run` the developer can read and rerun, and running it
attached to the terminal through the docker CLI."""

from __future__ import annotations

import shlex
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType

from shardrun.model.options import OPTIONS
from shardrun.model.shard import Shard
from shardrun.repro import relay


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


def run_attached(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    remove_container: Callable[[], object],
    secrets: Iterable[str] = (),
    tty: bool = False,
) -> int | None:
    """Run the docker CLI attached to this terminal, every value of `secrets` masked in
    what it shows (relay.py; `tty`: it was given `--tty`); its exit code, or None if
    shardrun was interrupted (SIGINT or SIGTERM) first.

    Without a terminal, the CLI passes a Ctrl-C on to the container, and a process that
    ignores it (PID 1 ignores SIGINT unless it handles it) keeps running after the CLI
    is gone: so shardrun removes the container itself, then waits for the CLI.
    """
    proc, finish = relay.start(argv, cwd, env, secrets, tty)
    interrupted = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
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
        finish()
    return None if interrupted else code
