"""The engines the commands connect through: the real Docker engines.

The CLI's one test hook. Each command reads `connect` when it runs and hands it to its
stage on the request; tests/host/cli/conftest.py sets it to a factory of fake engines,
so the real commands run end to end with no daemon (as tox runs its CLI with execution
swapped). Imported by a command when it runs, never by the app: `--help` stays light.
"""

from __future__ import annotations

from shardrun.run.request import Connect, real_engine

connect: Connect = real_engine
