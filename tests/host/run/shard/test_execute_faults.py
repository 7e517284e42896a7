"""Which engine errors are the worker's trouble (TransportError: move the shard) and which
are the shard's own (EngineRefused: an ERROR result), as the engine layer translates the
exceptions docker-py and requests really raise."""

from __future__ import annotations

import docker
import pytest
import requests
import urllib3
from paramiko.ssh_exception import SSHException

from shardrun.engine.docker_engine import translated
from shardrun.model.errors import EngineRefused, TransportError


def translated_as(exc: BaseException) -> type[BaseException]:
    try:
        with translated("a call"):
            raise exc
    except BaseException as out:  # noqa: BLE001 - what came out is the answer
        return type(out)
    raise AssertionError("nothing came out")


def _api_error(status: int) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError("refused", response=response)


@pytest.mark.parametrize(
    "exc",
    [
        requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError(
                "Connection aborted.", ConnectionResetError(104, "reset")
            )
        ),
        requests.exceptions.ReadTimeout("read timed out"),
        requests.exceptions.ChunkedEncodingError("ended early"),
        ConnectionResetError(104, "Connection reset by peer"),
        BrokenPipeError(32, "Broken pipe"),
        TimeoutError("timed out"),
        SSHException("SSH session not active"),
        _api_error(500),
        _api_error(503),
    ],
)
def test_the_worker_is_in_trouble(exc):
    assert translated_as(exc) is TransportError


@pytest.mark.parametrize(
    "exc",
    [
        _api_error(400),  # a bad mount or option
        _api_error(404),
        _api_error(409),
    ],
)
def test_the_engine_refused(exc):
    assert translated_as(exc) is EngineRefused


@pytest.mark.parametrize(
    "exc",
    [
        FileNotFoundError(2, "No such file"),  # a local file, not the worker
        PermissionError(13, "Permission denied"),
    ],
)
def test_this_machines_own_errors_pass_through(exc):
    assert translated_as(exc) is type(exc)


def test_a_load_the_engine_answers_with_an_error_is_a_refusal_whatever_the_status():
    with pytest.raises(EngineRefused), translated("loading", answered_is_refused=True):
        raise _api_error(500)
