"""Ctrl-C escalation in the CLI's driver, with real signals to a real process: the first
asks for cleanup, the second says cleanup goes on, the third exits at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import sys, anyio
    from shardrun.run.drive import drive
    from shardrun.ui.plain import PlainView

    async def work(emit, interrupt):
        print("working", flush=True)
        await interrupt.wait()
        with anyio.CancelScope(shield=True):
            print("cleaning", flush=True)
            await anyio.sleep(60)  # a cleanup that takes long: a worker slow to answer

    try:
        anyio.run(drive, PlainView(sys.stdout), work, "containers of run R may be left")
    finally:
        print("cleanup finished", flush=True)
""")


def test_a_second_interrupt_says_cleanup_goes_on_and_a_third_exits_at_once():
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "working\n"
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline() == "cleaning\n"
        proc.send_signal(signal.SIGINT)
        assert "still cleaning up" in proc.stderr.readline()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "cleanup finished" not in out  # it did not wait for the cleanup
    assert err.strip() == "shardrun: exiting without cleaning up: containers of run R may be left"
