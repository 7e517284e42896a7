"""A guard for the end of every test run: a test that leaves a non-daemon thread blocked
(an abandoned worker thread reading a socket, say) would hold the interpreter at exit, and
CI would hang after the summary instead of failing. The guard names such threads, with
where they wait, gives them a few seconds, then ends the process with pytest's own exit
status. Pure standard library: the unit tests also run in the test image."""

from __future__ import annotations

import os
import sys
import threading
import traceback

import pytest

_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _STATUS.append(int(exitstatus))


def pytest_unconfigure(config: pytest.Config) -> None:
    stuck = [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    for thread in stuck:
        thread.join(timeout=5)
    stuck = [t for t in stuck if t.is_alive()]
    if not stuck or not _STATUS:
        return
    frames = sys._current_frames()
    err = sys.__stderr__
    print(f"\ntests left {len(stuck)} thread(s) running; ending the run:", file=err)
    for thread in stuck:
        frame = frames.get(thread.ident or -1)
        where = "".join(traceback.format_stack(frame)[-6:]) if frame else "  (no frame)\n"
        print(f"- {thread.name}:\n{where}", file=err, end="")
    err.flush()
    sys.stdout.flush()
    os._exit(_STATUS[-1])
