"""The real CLI in-process, its engines swapped for FakeEngines (as tox runs its CLI with
execution swapped): `docker` fixture below.

The swap is the CLI's one test hook, `shardrun.cli.engines.connect`: every command hands
it to its stage, which connects the builder and the workers through it. Each engine
address here is a unix socket that does not exist, so nothing can reach a real daemon:
not a stray connect, and not the run's watchdog (a real process of its own, which
connects for real and would find nothing to remove).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from shardrun.cli import engines
from shardrun.cli.app import app
from shardrun.engine.api import Engine
from shardrun.engine.endpoints import Endpoint
from shardrun.model.errors import InfraError
from shardrun.model.matrix import CI_VARIABLES
from tests.fakes.engine import FakeEngine, FakeImage
from tests.fakes.watchdogs import assert_released

PROJECT = "proj"
IMAGE = FakeImage.make(b"base layer", b"test layer", labels={"shardrun.project": PROJECT})
NOWHERE = "unix:///nonexistent-shardrun-fakes"
LOCAL = f"{NOWHERE}/local.sock"  # DOCKER_HOST: the default builder, and worker


def url(name: str) -> str:
    return f"{NOWHERE}/{name}.sock"


class FakeDocker:
    """The engine factory the CLI gets: the FakeEngine registered at an endpoint's URL
    (the same one each time: the builder is a worker too), else unreachable, as
    endpoints.connect says it."""

    def __init__(self) -> None:
        self.engines: dict[str, FakeEngine] = {}

    def add(self, name: str, *, has_image: bool = False, builds: bool = False) -> FakeEngine:
        fake = FakeEngine(
            name, images=[IMAGE] if has_image else [], built=IMAGE if builds else None
        )
        self.engines[LOCAL if name == "local" else url(name)] = fake
        return fake

    def __call__(
        self, endpoint: Endpoint, concurrency: int, timeout: int, call_timeout: int | None
    ) -> Engine:
        fake = self.engines.get(endpoint.url)
        if fake is None:
            raise InfraError(f"cannot reach the Docker engine at {endpoint.url}: no fake there")
        return fake


@pytest.fixture
def docker(monkeypatch, tmp_path) -> FakeDocker:
    """No engine unless a test adds one; every command connects through this."""
    fakes = FakeDocker()
    monkeypatch.setattr(engines, "connect", fakes)
    monkeypatch.setenv("DOCKER_HOST", LOCAL)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # no contexts
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    for name in ("GITHUB_STEP_SUMMARY", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    for index, total, _ in CI_VARIABLES:  # this job is in no matrix unless a test says so
        monkeypatch.delenv(index, raising=False)
        monkeypatch.delenv(total, raising=False)
    monkeypatch.chdir(tmp_path)
    yield fakes
    for fake in fakes.engines.values():
        fake.stop_answering()  # frees any thread a run abandoned in one
    assert_released()


@dataclass(frozen=True)
class Project:
    root: Path

    @property
    def state(self) -> Path:
        return self.root / ".shardrun"

    def latest(self) -> Path:
        return (self.state / "runs" / "latest").resolve()


def write_project(root: Path, shards: list[str], workers: list[str] = ()) -> Project:
    """shards.toml with these shards (each `true`, one at a time per slot) and workers
    (each a fake's name)."""
    (root / "Dockerfile.test").write_text("FROM scratch\n")
    text = f'project = "{PROJECT}"\n'
    text += "".join(f'[[shard]]\nname = "{s}"\ncommand = "true"\n' for s in shards)
    text += "".join(f'[[worker]]\nname = "{w}"\nhost = "{url(w)}"\nslots = 1\n' for w in workers)
    (root / "shards.toml").write_text(text)
    return Project(root)


def shardrun(*args: str) -> Result:
    """`shardrun ARGS` in this process, as a user runs it (exit code, stdout, stderr)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)
