"""`shardrun repro SHARD`: one shard as a plain `docker run` the developer can rerun.

The command is printed, then run attached to the terminal through the docker CLI, so a
failing shard can be reproduced, and poked at with `--shell`, exactly as it ran.
"""

from __future__ import annotations

import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence

from shardrun.errors import ConfigError
from shardrun.plan import Shard


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
    for key, value in shard.env.items():
        argv += ["--env", f"{key}={value}"]
    for name in shard.secret_env:  # the value comes from the CLI's environment, never argv
        argv += ["--env", name]
    for v in shard.volumes:
        argv += ["--volume", f"{v.source}:{v.target}:{'ro' if v.read_only else 'rw'}"]
    for flag, value in (
        ("--workdir", shard.workdir),
        ("--user", shard.user),
        ("--shm-size", shard.shm_size),
        ("--network", shard.network),
        ("--cpus", shard.cpus),
        ("--memory", shard.memory),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for option in shard.security_opt:
        argv += ["--security-opt", option]
    command = list(shard.command) if shard.command is not None else []
    if shell:
        argv += ["--entrypoint", "sh", image_id]
    elif shard.entrypoint is not None:
        # `docker run --entrypoint` takes the executable only; its arguments lead the command.
        argv += ["--entrypoint", shard.entrypoint[0], image_id, *shard.entrypoint[1:], *command]
    else:
        argv += [image_id, *command]
    return argv


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
