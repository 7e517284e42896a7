"""What each command imports (issue 7): start-up time is mostly imports.

Each test runs the real CLI of this checkout in a fresh interpreter and reads the modules
it ends with. No timings here: bench/startup.py measures those. No Docker either: the
run-path tests point every engine at an address that refuses, which fails the run after
it has imported and resolved everything a real run does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"docker", "requests", "paramiko", "anyio", "rich.live"}
SSH_STACK = {"paramiko", "docker.transport.sshconn"}

# The CLI leaves by os._exit, past atexit; wrap it to write sys.modules down first.
PROBE = r"""
import os, runpy, sys
exit_now = os._exit
def dump_and_exit(code):
    with open(os.environ["PROBE_MODULES"], "w") as out:
        out.write("\n".join(name for name, module in sys.modules.items() if module))
    exit_now(code)
os._exit = dump_and_exit
sys.argv = ["shardrun", *sys.argv[1:]]
runpy.run_module("shardrun", run_name="__main__", alter_sys=True)
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # this checkout, not an installed copy
        "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),  # no contexts of this machine
        **extra,
    }


def imported(tmp_path: Path, cwd: Path, *args: str) -> tuple[set[str], subprocess.CompletedProcess]:
    """Run `shardrun ARGS` in `cwd`; the modules loaded when it exited, and the process."""
    out = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=_env(tmp_path, PROBE_MODULES=str(out)),
        timeout=120,
    )
    assert out.exists(), done.stderr
    return set(out.read_text().split()), done


def top_level(modules: set[str], names: set[str]) -> set[str]:
    """Which of `names` (packages or dotted modules) are among `modules`."""
    return {n for n in names if n in modules or any(m.startswith(n + ".") for m in modules)}


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "Dockerfile.test").write_text("FROM scratch\n")
    (root / "shards.toml").write_text(
        '[[shard]]\nname = "unit-{index}"\ncount = 2\ncommand = "true"\n'
    )
    return root


def test_help_imports_typer_and_no_shardrun_stage(tmp_path, proj):
    modules, done = imported(tmp_path, proj, "--help")

    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert top_level(modules, HEAVY | {"rich"}) == set()
    assert top_level(modules, {"shardrun.config", "shardrun.plan", "shardrun.ui"}) == set()


def test_list_imports_config_and_plan_only(tmp_path, proj):
    modules, done = imported(tmp_path, proj, "list")

    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[::2] == ["unit-1", "unit-2"]
    assert {"shardrun.config", "shardrun.plan"} <= modules
    assert top_level(modules, HEAVY | {"rich"}) == set()
    # Every command starts with engine/lazy_ssh (pure: it keeps paramiko out); nothing
    # else of the engine's.
    engine = {m for m in modules if m.startswith("shardrun.engine.")}
    assert engine == {"shardrun.engine.lazy_ssh"}
    assert top_level(modules, {"shardrun.run", "shardrun.ui"}) == set()


def test_run_over_unix_and_tcp_leaves_the_ssh_stack_out(tmp_path, proj):
    modules, done = imported(
        tmp_path,
        proj,
        "run",
        "--plain",
        "-w",
        f"unix://{tmp_path}/no-worker.sock",
        "-w",
        "tcp://127.0.0.1:1",
    )

    assert "cannot reach the Docker engine" in done.stderr, done.stderr
    assert {
        "docker",
        "shardrun.run.workflow",
        "shardrun.run.shard.execute",
        "shardrun.engine",
    } <= modules
    assert top_level(modules, SSH_STACK) == set()


def test_run_with_an_ssh_worker_loads_the_ssh_stack(tmp_path, proj):
    modules, done = imported(tmp_path, proj, "run", "--plain", "-w", "ssh://nobody@127.0.0.1:1")

    assert "cannot reach the Docker engine" in done.stderr, done.stderr
    assert modules >= SSH_STACK


# In one interpreter, the way the CLI sets it up (cli.app.main): docker without its SSH
# transport, then an ssh:// endpoint resolved after the engine layer was imported.
SSH_LATE = r"""
import sys
sys.modules["docker.transport.sshconn"] = None  # as cli.app.main does
from shardrun.engine import endpoints as engine  # everything a run imports
from shardrun.run.shard import execute
from shardrun.run import workflow
from shardrun.engine.docker_engine import translated
from shardrun.model.errors import TransportError
assert "paramiko" not in sys.modules

import docker
try:
    docker.APIClient(base_url="ssh://nobody@127.0.0.1:1", version="1.41")
except docker.errors.DockerException as exc:
    assert "paramiko" in str(exc), exc  # docker-py's own "install paramiko" message
else:
    raise AssertionError("an ssh:// client without the SSH transport")

engine.resolve("ssh://nobody@127.0.0.1:1")

from paramiko.ssh_exception import SSHException
try:  # paramiko's errors, loaded late, are still the worker's trouble
    with translated("waiting"):
        raise SSHException("SSH session not active")
except TransportError:
    pass
else:
    raise AssertionError("SSHException was not taken as a transport error")
try:
    docker.APIClient(base_url="ssh://nobody@127.0.0.1:1", version="1.41")
except OSError as exc:  # paramiko's NoValidConnectionsError: it really tried to connect
    assert "127.0.0.1" in str(exc), exc
print("ok")
"""


def test_an_ssh_endpoint_loads_the_transport_and_its_errors_after_the_fact(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", SSH_LATE],
        check=False,
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
        cwd=tmp_path,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
