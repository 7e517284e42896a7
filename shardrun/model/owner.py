"""Who started a container, and whether that runner is gone (docs/guarantees.md).

Every container carries its runner's host, boot, pid and process start time, and, when
its shard has a timeout, a deadline. A container is an orphan when its runner is known
to be dead (same boot of this host, and that pid is gone or is another process now) or
when its deadline has passed, whoever started it. Orphans are reaped by every command
at start; a live run's containers are never touched, whatever their state.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

LABEL_RUN = "shardrun.run"
LABEL_SHARD = "shardrun.shard"
LABEL_PROJECT = "shardrun.project"
LABEL_HOST = "shardrun.owner.host"
LABEL_BOOT = "shardrun.owner.boot"  # a pid means nothing after a reboot
LABEL_PID = "shardrun.owner.pid"
LABEL_STARTED = "shardrun.owner.started"  # the pid's start time: pids are reused
LABEL_DEADLINE = "shardrun.deadline"  # epoch seconds; past it the container is an orphan

# Past its timeout the runner kills a container within seconds. The margin covers the
# time between create and start on a busy engine and the runner's own kill grace.
DEADLINE_MARGIN = 60.0


@dataclass(frozen=True)
class Owner:
    host: str
    boot: str
    pid: int
    started: str

    def labels(self) -> dict[str, str]:
        return {
            LABEL_HOST: self.host,
            LABEL_BOOT: self.boot,
            LABEL_PID: str(self.pid),
            LABEL_STARTED: self.started,
        }


@cache
def me() -> Owner:
    pid = os.getpid()
    return Owner(socket.gethostname(), boot_id(), pid, process_started(pid) or "")


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:  # not Linux: the host name alone cannot tell reboots apart
        return ""


def process_started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such
    process. Where /proc is missing, "?" for any live pid (reuse then goes unnoticed)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return "?" if alive(pid) else None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (it may be another's, or a reuse)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive
    except OverflowError:
        return False  # not a pid at all
    return True


def deadline_label(timeout: float | None, now: float | None = None) -> dict[str, str]:
    if timeout is None:
        return {}
    return {LABEL_DEADLINE: f"{(now or time.time()) + timeout + DEADLINE_MARGIN:.0f}"}


def is_orphan(
    labels: Mapping[str, str], state: str, now: float | None = None, owner: Owner | None = None
) -> bool:
    """True if nobody will remove this container: its runner is dead or its time is up.

    Containers of runners on other hosts (or from before a reboot of a host with the same
    name) are judged by their deadline only. Containers from before owner labels existed
    are orphans once they are not running.
    """
    owner = owner or me()
    deadline = labels.get(LABEL_DEADLINE)
    if deadline:
        with contextlib.suppress(ValueError):
            if float(deadline) < (now or time.time()):
                return True
    if LABEL_PID not in labels:
        return state != "running"
    if labels.get(LABEL_HOST) != owner.host or labels.get(LABEL_BOOT) != owner.boot:
        return False
    try:
        pid = int(labels[LABEL_PID])
    except ValueError:
        return False
    if pid == owner.pid:
        return labels.get(LABEL_STARTED) != owner.started
    started = process_started(pid)
    return started is None or (started != "?" and started != labels.get(LABEL_STARTED))
