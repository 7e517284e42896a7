"""Keeping docker-py's SSH stack out of processes that do not need it.

docker-py's transport package imports its SSH adapter, and paramiko with it, whatever the
engine's URL: 0.25 s more for every process that talks to an engine (issue 7). None in
sys.modules makes that guarded import fail as it would without paramiko; an ssh://
endpoint loads the adapter after all (endpoints.load_ssh_transport). Pure: no docker here.
"""

from __future__ import annotations

import sys

SSH_TRANSPORT = "docker.transport.sshconn"


def defer_ssh_transport() -> None:
    """Before docker-py is imported: leave its SSH adapter out (unless it is in already)."""
    sys.modules.setdefault(SSH_TRANSPORT, None)  # type: ignore[arg-type]  # None: its import fails
