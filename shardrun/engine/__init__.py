"""The only code that imports docker, requests or paramiko (issue 7).

`api` is the interface and shardrun's values (pure); `docker_engine` the real engine;
`endpoints` finds and connects to one; `context` makes a build context; `fake` is an
in-memory engine for tests. The names of `endpoints` load on first use, so importing the
interface (or the fake) does not import docker-py.
"""

from __future__ import annotations

import importlib
from typing import Any

from shardrun.engine.api import (
    ENGINE_FAILURES,
    ContainerInfo,
    ContainerRequest,
    Engine,
    EngineFacts,
    OutputStream,
)

__all__ = [
    "ENGINE_FAILURES",
    "SSH_CALLS",
    "URL_SCHEMES",
    "ContainerInfo",
    "ContainerRequest",
    "Endpoint",
    "Engine",
    "EngineFacts",
    "OutputStream",
    "connect",
    "load_ssh_transport",
    "resolve",
]
_FROM_ENDPOINTS = {"Endpoint", "URL_SCHEMES", "SSH_CALLS", "SSH_TRANSPORT", "connect", "resolve",
                 "load_ssh_transport"}


def __getattr__(name: str) -> Any:
    if name in _FROM_ENDPOINTS:
        return getattr(importlib.import_module("shardrun.engine.endpoints"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
