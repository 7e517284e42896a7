"""A run's watchdog: removes the run's containers when the runner dies without doing so.

The runner starts it as its own small process, in a session of its own (so the Ctrl-C
or kill of the runner's process group does not reach it), with a pipe on its stdin. A
runner that ends normally writes "done" after its own cleanup; a runner killed with
SIGKILL, by the OOM killer or a crash just closes the pipe, and the watchdog then
removes every container labelled with the run's ID on each worker, at once.

This is the Testcontainers Ryuk idea without a container: a reaper container would need
an image with a Docker client on every worker, and there is no registry to pull one from.
What a watchdog cannot cover (the whole host gone: a closed laptop, a reboot) is left
to the deadline label that every later command enforces (owner.py).

Usage (by the runner only): python -m shardrun.watchdog RUN_ID WORKER...
where each WORKER is a docker context name or engine URL, as --worker takes them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

_DONE = b"done\n"
_CONNECT_TIMEOUT = 15


class Watchdog:
    """The runner's end of the pipe."""

    def __init__(self, run_id: str, workers: list[str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "shardrun.cleanup.watchdog", run_id, *workers],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def release(self) -> None:
        """The runner cleaned up itself: the watchdog exits without touching anything."""
        stdin = self._proc.stdin
        assert stdin is not None  # started with stdin=PIPE
        try:
            stdin.write(_DONE)
            stdin.close()
        except OSError:
            pass  # it is gone already; nothing is left for it to do


def _reap(run_id: str, workers: list[str]) -> None:
    import threading

    from shardrun.cleanup import reap
    from shardrun.engine import endpoints

    def one(worker: str) -> None:
        # A worker it cannot reach has nothing it could remove.
        with contextlib.suppress(Exception):
            endpoint = endpoints.resolve(worker)
            reap.remove_run(endpoints.connect(endpoint, timeout=_CONNECT_TIMEOUT), run_id)

    threads = [threading.Thread(target=one, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main(argv: list[str]) -> int:
    from shardrun.engine.lazy_ssh import defer_ssh_transport

    run_id, workers = argv[0], argv[1:]
    if sys.stdin.buffer.read() == _DONE:
        return 0
    defer_ssh_transport()  # the runner is gone: reap at once, without paramiko's 0.25 s
    _reap(run_id, workers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
