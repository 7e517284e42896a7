"""The docker CLI's output on its way to this terminal, through a Masker: what `repro`
shows of a shard that has secrets.

A run masks every secret in a shard's output (masking.py); `repro` runs the same shard
attached through the docker CLI, and used to hand it this terminal, so a shard that
printed its token showed it in the clear (issue 25). With secrets, the CLI writes to
pipes instead (one Masker per stream), or, when it is given a terminal (`--tty`), to a
pseudo-terminal whose output is masked on its way to the real one, while what is typed
goes the other way untouched. Output that could be the start of a secret is held back
until the next bytes show it is not (masking.py), so at a prompt a typed letter can show
one key late. Without secrets nothing comes between them.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from shardrun.run.shard.masking import Masker

_BLOCK = 65536
# How long to wait, after the CLI exits, for the last of its output to be shown.
_DRAIN = 5.0


def start(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], secrets: Iterable[str], tty: bool
) -> tuple[subprocess.Popen, Callable[[], None]]:
    """The CLI started with its output masked (or not, without secrets), and what ends the
    relay once it has exited: every byte shown, the terminal as it was."""
    secrets = [s for s in secrets if s]
    if not secrets:
        return subprocess.Popen(list(argv), cwd=cwd, env=dict(env)), lambda: None
    if tty and sys.stdin.isatty() and sys.stdout.isatty():
        return _through_pty(argv, cwd, env, secrets)
    sys.stdout.flush()
    sys.stderr.flush()
    proc = subprocess.Popen(
        list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None  # PIPE gives both
    pumps = [
        _pump(proc.stdout.fileno(), sys.stdout.buffer, Masker(secrets)),
        _pump(proc.stderr.fileno(), sys.stderr.buffer, Masker(secrets)),
    ]
    return proc, lambda: _join(pumps)


def _pump(fd: int, out: BinaryIO, masker: Masker) -> threading.Thread:
    def show(data: bytes) -> bool:
        try:
            out.write(data)
            out.flush()
        except (OSError, ValueError):  # our output is gone (`| head`): read on, unshown
            return False
        return True

    def copy() -> None:
        shown = True
        with suppress(OSError):  # EIO: a pseudo-terminal whose other end has closed
            # Read to the end even once nothing can be shown, so the CLI never blocks
            # on a full pipe with shardrun waiting for it.
            while chunk := os.read(fd, _BLOCK):
                shown = shown and show(masker.feed(chunk))
        if shown:
            show(masker.flush())

    thread = threading.Thread(target=copy, name="shardrun-relay", daemon=True)
    thread.start()
    return thread


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        # A grandchild of the CLI could hold the pipe open: never wait for it for long.
        thread.join(_DRAIN)


def _through_pty(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], secrets: list[str]
) -> tuple[subprocess.Popen, Callable[[], None]]:
    import pty
    import termios
    import tty

    master, child_end = pty.openpty()
    _copy_size(child_end)
    saved = termios.tcgetattr(sys.stdin.fileno())
    # Raw, as the docker CLI makes the terminal it is given: keys (Ctrl-C too) go to the
    # container as bytes, and the CLI sets the pseudo-terminal raw in turn.
    tty.setraw(sys.stdin.fileno())
    try:
        end = child_end
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdin=end, stdout=end, stderr=end
        )
    except BaseException:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        os.close(master)
        raise
    finally:
        os.close(child_end)  # so the output ends (EIO) when the CLI exits
    sys.stdout.flush()
    output = _pump(master, sys.stdout.buffer, Masker(secrets))
    stop = threading.Event()
    keys = threading.Thread(target=_keys, args=(master, stop), name="shardrun-keys", daemon=True)
    keys.start()
    # The CLI resizes the container's terminal on SIGWINCH: pass the new size on with it.
    previous = signal.signal(signal.SIGWINCH, lambda *_: _resize(master, proc))

    def finish() -> None:
        stop.set()
        _join([output, keys])
        signal.signal(signal.SIGWINCH, previous)
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
        os.close(master)

    return proc, finish


def _keys(master: int, stop: threading.Event) -> None:
    """What is typed, to the CLI as it is typed, until the relay stops."""
    stdin = sys.stdin.fileno()
    with suppress(OSError):
        while not stop.is_set():
            ready, _, _ = select.select([stdin], [], [], 0.1)
            if ready:
                data = os.read(stdin, _BLOCK)
                if not data:
                    return
                os.write(master, data)


def _copy_size(fd: int) -> None:
    import fcntl
    import termios

    with suppress(OSError):
        size = fcntl.ioctl(sys.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def _resize(master: int, proc: subprocess.Popen) -> None:
    _copy_size(master)
    with suppress(ProcessLookupError):
        proc.send_signal(signal.SIGWINCH)
