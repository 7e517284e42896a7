"""The run's watchdog is a real process even when the engines are fakes: a test checks
that every run it made released its watchdog."""

from __future__ import annotations

import os
import time


def live_watchdogs() -> list[int]:
    """This process's children that are a live shardrun watchdog (zombies have no
    command line: they have exited)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"shardrun.cleanup.watchdog" in command:
            found.append(int(entry))
    return found


def assert_released(seconds: float = 3) -> None:
    """Every watchdog this process started is gone (a released one exits at once; give
    it a moment to go)."""
    end = time.monotonic() + seconds
    while live_watchdogs() and time.monotonic() < end:
        time.sleep(0.02)
    assert live_watchdogs() == [], "a run left its watchdog process running"
