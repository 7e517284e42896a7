"""Connecting to a worker: a docker context name, DOCKER_HOST, or an engine URL."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import docker
import docker.api.client
import docker.transport
from docker.context import ContextAPI
from docker.context.config import get_current_context_name
from docker.errors import ContextNotFound, TLSParameterError
from docker.tls import TLSConfig

from shardrun.engine.docker_engine import DockerEngine
from shardrun.engine.lazy_ssh import SSH_TRANSPORT
from shardrun.model.errors import ConfigError, InfraError

URL_SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://", "http://", "https://")

# Logs and waits each hold a pooled connection for a container's whole life; a pool
# smaller than the concurrency makes urllib3 block or drop connections.
_EXTRA_CONNECTIONS = 8
# Over ssh:// every HTTP connection is an SSH session running `docker system dial-stdio`
# (about 0.3 s to open), and sshd allows 10 sessions per SSH connection (MaxSessions). An
# ssh client therefore reuses one pool of at most SSH_CALLS connections and makes at most
# SSH_CALLS calls at once (workers.py); a worker opens one SSH connection per slot.
SSH_CALLS = 5


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    tls: TLSConfig | bool = False
    source: str = ""  # where it came from, for messages: "context foo", "DOCKER_HOST"

    @property
    def is_remote(self) -> bool:
        return self.url.startswith(("tcp://", "ssh://", "http://", "https://"))


def _tls_from_env() -> TLSConfig | bool:
    cert_path = os.environ.get("DOCKER_CERT_PATH")
    verify = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    if not cert_path and not verify:
        return False
    cert_path = cert_path or os.path.join(os.path.expanduser("~"), ".docker")
    try:
        return TLSConfig(
            client_cert=(os.path.join(cert_path, "cert.pem"), os.path.join(cert_path, "key.pem")),
            ca_cert=os.path.join(cert_path, "ca.pem"),
            verify=verify,
        )
    except TLSParameterError as exc:
        raise ConfigError(
            f"DOCKER_CERT_PATH {cert_path}: needs ca.pem, cert.pem and key.pem ({exc}); point "
            "DOCKER_CERT_PATH at the client certificates, or unset DOCKER_TLS_VERIFY"
        ) from exc


def _from_context(name: str) -> Endpoint:
    try:
        context = ContextAPI.get_context(name)
    except ContextNotFound:
        context = None
    except Exception as exc:
        raise ConfigError(f"docker context {name!r} cannot be read: {exc}") from exc
    if context is None or not context.Host:
        raise ConfigError(
            f"docker context {name!r} does not exist; `docker context ls` lists the contexts "
            "(DOCKER_CONFIG selects another store), or give an engine URL such as ssh://user@host"
        )
    tls = context.TLSConfig if context.Host.startswith("tcp://") else False
    return Endpoint(name=name, url=context.Host, tls=tls or False, source=f"context {name}")


def resolve(value: str | None = None) -> Endpoint:
    """Resolve a worker as the docker CLI would: URL, context name, or the current one.

    An ssh:// endpoint loads the SSH transport now, before any thread connects."""
    endpoint = _resolve(value)
    if endpoint.url.startswith("ssh://"):
        load_ssh_transport()
    return endpoint


def _resolve(value: str | None) -> Endpoint:
    if value and value.startswith(URL_SCHEMES):
        tls = _tls_from_env() if value.startswith("tcp://") else False
        return Endpoint(name=_short_name(value), url=value, tls=tls, source=value)
    if value and value != "default":
        return _from_context(value)
    # The current engine, by the docker CLI's own precedence.
    if os.environ.get("DOCKER_HOST"):
        url = os.environ["DOCKER_HOST"]
        return Endpoint(name="local", url=url, tls=_tls_from_env(), source="DOCKER_HOST")
    # By name, not get_current_context(): that returns None for a stale current context.
    current = os.environ.get("DOCKER_CONTEXT") or get_current_context_name()
    if current and current != "default":
        return _from_context(current)
    return Endpoint(name="local", url="unix:///var/run/docker.sock", source="default context")


def _short_name(url: str) -> str:
    rest = url.split("://", 1)[1]
    return rest.rsplit("/", 1)[-1] if url.startswith("unix://") else rest


def connect(
    endpoint: Endpoint, concurrency: int = 4, timeout: int = 120, call_timeout: int | None = None
) -> DockerEngine:
    """An engine whose pool fits `concurrency` containers; raises InfraError if unreachable.

    `timeout` bounds the first answer (an unreachable host fails that fast); later calls
    get `call_timeout` when given. Long calls set their own (builds and loads none)."""
    # Over ssh, paramiko rather than the ssh command: docker-py's ssh-command transport
    # starts a new ssh process for every call (~0.5 s each here).
    over_ssh = endpoint.url.startswith("ssh://")
    if over_ssh:
        load_ssh_transport()  # done already if the endpoint came from resolve()
    pool = SSH_CALLS if over_ssh else 2 * concurrency + _EXTRA_CONNECTIONS
    try:
        client = docker.DockerClient(
            base_url=endpoint.url, tls=endpoint.tls, timeout=timeout, max_pool_size=pool
        )  # which asks the engine for its API version: that is our reachability check
        _share_one_ssh_pool(client)
    except Exception as exc:
        source = f" ({endpoint.source})" if endpoint.source != endpoint.url else ""
        raise InfraError(
            f"cannot reach the Docker engine at {endpoint.url}{source}: {_why(exc)}; "
            "start it or check the worker's address"
        ) from exc
    if call_timeout is not None:
        client.api.timeout = call_timeout
    return DockerEngine(client)


def load_ssh_transport() -> None:
    """Import docker-py's SSH adapter (and paramiko) if the CLI deferred it. Idempotent."""
    if hasattr(docker.api.client, "SSHHTTPAdapter"):
        return
    if sys.modules.get(SSH_TRANSPORT, "") is None:
        sys.modules.pop(SSH_TRANSPORT, None)
    try:
        from docker.transport.sshconn import SSHHTTPAdapter
    except ImportError as exc:
        raise ConfigError(
            f"ssh:// workers need paramiko, which cannot be imported ({exc}); "
            "install it with `pip install paramiko`"
        ) from exc
    # Where docker-py's own guarded imports put it when paramiko loads with docker.
    docker.transport.SSHHTTPAdapter = SSHHTTPAdapter
    docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter


def _share_one_ssh_pool(client: docker.DockerClient) -> None:
    """Make docker-py's SSH adapter use one connection pool instead of one per URL path.

    Keyed by path, every new container ID opens a new pool with its own idle SSH sessions:
    nothing is reused, each call pays for a new `dial-stdio`, and idle sessions pile up
    until sshd refuses more ("no more sessions"). The pool never looks at the URL.
    """
    adapter = getattr(client.api, "_custom_adapter", None)
    if adapter is None or getattr(adapter, "ssh_client", None) is None:
        return
    get_connection = adapter.get_connection
    adapter.get_connection = lambda url, proxies=None: get_connection("ssh://shared", proxies)


def _why(exc: BaseException) -> str:
    """The root cause in a few words: requests buries it deep in a retry message."""
    text = str(exc)
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if errno:
        return errno.group(1).strip()
    os_error = re.search(r"Error\(\d+, '([^']+)'\)", text)
    if os_error:
        return os_error.group(1)
    lines = text.strip().splitlines()
    return lines[-1][:160] if lines else type(exc).__name__
