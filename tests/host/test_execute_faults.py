"""Which engine errors are the worker's trouble (move the shard) and which are the shard's
own (an ERROR result): the exceptions docker-py and requests really raise."""

from __future__ import annotations

import docker
import pytest
import requests
import urllib3
from paramiko.ssh_exception import SSHException

from shardrun.execute import is_transport


def _api_error(status: int) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("refused", response=response)


@pytest.mark.parametrize("exc", [
    requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    ),
    requests.exceptions.ReadTimeout("read timed out"),
    requests.exceptions.ChunkedEncodingError("ended early"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    TimeoutError("timed out"),
    SSHException("SSH session not active"),
    _api_error(500),
    _api_error(503),
])
def test_the_worker_is_in_trouble(exc):
    assert is_transport(exc)


@pytest.mark.parametrize("exc", [
    _api_error(400),  # a bad mount or option
    _api_error(404),
    _api_error(409),
    OSError(36, "File name too long"),  # a local file, not the worker
    FileNotFoundError(2, "No such file"),
])
def test_the_shard_or_this_machine_is_at_fault(exc):
    assert not is_transport(exc)
