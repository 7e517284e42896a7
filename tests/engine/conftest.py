"""Fixtures for tests against a real Docker engine: the engine, a busybox base image made
locally from busybox-static (no registry is needed), and throwaway projects."""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

BUSYBOX_IMAGE = "shardrun-test-busybox:1"
PYTHON_BASE = "shardrun-python-base:bookworm"
# One build of the Debian + Python base on this machine at a time, whatever the number of
# pytest processes (a second run waits for the first, then finds the image).
_PYTHON_BASE_LOCK = Path("/tmp/shardrun-python-base.lock")
ROOT = Path(__file__).resolve().parents[2]
LABEL_PROJECT = "shardrun.project"


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The engine the CLI will use too (DOCKER_HOST or the default socket)."""
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.fail(
            f"no Docker engine is reachable ({exc}). These tests run against a real engine: "
            "start dockerd (README, 'Running the tests') and run them again.",
            pytrace=False,
        )
    return client


def _busybox_tar() -> bytes:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static", pytrace=False)
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        tmp = tarfile.TarInfo("tmp")
        tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(tmp)
    return buf.getvalue()


def ensure_busybox(client: docker.DockerClient, image: str = BUSYBOX_IMAGE) -> str:
    """A 2 MB busybox image made with `docker import`, the way design.md describes."""
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        repository, tag = image.rsplit(":", 1)
        client.api.import_image_from_data(_busybox_tar(), repository=repository, tag=tag)
    return image


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:
    return ensure_busybox(docker_client)


def ensure_python_base(client: docker.DockerClient, image: str = PYTHON_BASE) -> str:
    """The Debian + Python base image, found or made by scripts/make-python-base
    (debootstrap, then `docker import`: about a minute), one maker at a time."""
    if _has_image(client, image):
        return image
    if shutil.which("debootstrap") is None:
        pytest.fail(
            f"{image} is missing and debootstrap is not installed to make it: "
            "apt-get install debootstrap",
            pytrace=False,
        )
    if os.geteuid() != 0:
        pytest.fail(
            f"{image} is missing, and making it (debootstrap) needs root: run "
            "scripts/make-python-base as root once",
            pytrace=False,
        )
    with _PYTHON_BASE_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _has_image(client, image):  # another run made it while this one waited
            return image
        made = subprocess.run(
            [str(ROOT / "scripts" / "make-python-base"), image],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    if made.returncode != 0 or not _has_image(client, image):
        pytest.fail(
            f"scripts/make-python-base {image} failed (it needs root, debootstrap and "
            f"a reachable Debian mirror):\n{(made.stdout + made.stderr)[-2000:]}",
            pytrace=False,
        )
    return image


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


@pytest.fixture(scope="session")
def python_base(docker_client) -> str:
    """For Dockerfiles that need Python in the container (split tests): made once."""
    return ensure_python_base(docker_client)


@dataclass
class Project:
    root: Path
    name: str

    def write(self, relpath: str, text: str) -> Path:
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def shardrun(self, *args: str, timeout: float = 180, env: dict | None = None):
        """Run the real CLI in a subprocess, as a user would."""
        return subprocess.run(  # noqa: PLW1510 - the exit code is what we test
            [sys.executable, "-m", "shardrun", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "shardrun", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def report(self, run: str = "latest") -> dict:
        return json.loads((self.root / ".shardrun" / "runs" / run / "report.json").read_text())

    def statuses(self) -> dict[str, str]:
        return {s["name"]: s["status"] for s in self.report()["shards"]}


DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY payload.txt /payload.txt
RUN echo built > /built.txt
"""


@pytest.fixture
def project(tmp_path, docker_client, busybox_image):
    """An empty project with a busybox Dockerfile.test; its name isolates its containers."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    proj = Project(tmp_path / name, name)
    proj.root.mkdir()
    proj.write("Dockerfile.test", DOCKERFILE)
    proj.write("payload.txt", "payload\n")
    yield proj
    leftover = docker_client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={name}"})
    for container in leftover:
        container.remove(force=True)
    images = docker_client.images.list(filters={"label": f"{LABEL_PROJECT}={name}"})
    for image in images:
        docker_client.images.remove(image.id, force=True)
    shutil.rmtree(proj.root, ignore_errors=True)
    assert not leftover, f"containers of {name} were left behind: {[c.name for c in leftover]}"


def wait_for_running(
    client: docker.DockerClient, project: Project, count: int = 1, within: float = 60
) -> list:
    """Block until `count` of the project's containers run on that engine (or fail)."""
    deadline = time.monotonic() + within
    label = {"label": f"{LABEL_PROJECT}={project.name}"}
    while time.monotonic() < deadline:
        running = client.containers.list(filters=label)  # running ones only
        if len(running) >= count:
            return running
        time.sleep(0.1)
    pytest.fail(f"{count} containers of {project.name} did not start within {within}s")


def shards_toml(project: Project, body: str, base: str = BUSYBOX_IMAGE, image: str = "") -> str:
    """A shards.toml with the project's name and busybox base, more `image` keys, then `body`."""
    return (
        f'project = "{project.name}"\n'
        f'[image]\nbuild-args = {{ BASE_IMAGE = "{base}" }}\n{image}\n'
        f"{body}"
    )


def two_runs_at_once(project: Project, *args: str, pairs: int, ok: int) -> None:
    """Start `pairs` times two `shardrun run` 0.1 s apart in one project, as two terminals
    or two CI jobs would: each must report exactly its own, right results."""
    project.write(
        "shards.toml",
        shards_toml(
            project,
            f"""
[defaults]
network = "none"
[[shard]]
name = "ok-{{index}}"
count = {ok}
command = ["sh", "-c", "sleep 0.3; echo ok"]
[[shard]]
name = "bad"
command = ["sh", "-c", "echo bad; exit 3"]
""",
        ),
    )
    for _ in range(pairs):
        first = project.popen("run", "--plain", *args)
        time.sleep(0.1)
        second = project.popen("run", "--plain", *args)
        for proc in (first, second):
            out, err = proc.communicate(timeout=180)
            assert proc.returncode == 1, out + err
            run_id = next(
                ln.split()[2].rstrip(":") for ln in out.splitlines() if ln.split()[1:2] == ["run"]
            )
            statuses = {
                s["name"]: (s["status"], s["exit_code"]) for s in project.report(run_id)["shards"]
            }
            assert statuses == {
                **{f"ok-{i}": ("PASS", 0) for i in range(1, ok + 1)},
                "bad": ("FAIL", 3),
            }, out


def hosts_script(command: str = "up") -> dict[str, str]:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "worker-hosts"), *command.split()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/worker-hosts {command} failed (it needs root, iproute2, openssh-server "
            f"and docker.io):\n{proc.stderr[-2000:]}",
            pytrace=False,
        )
    return dict(line.split("=", 1) for line in proc.stdout.split() if "=" in line)


@pytest.fixture(scope="session")
def hosts(docker_client) -> dict[str, str]:
    env = hosts_script("up")
    for url in (env["SHARDRUN_TEST_W1_UNIX"], env["SHARDRUN_TEST_W2_UNIX"]):
        ensure_busybox(docker.DockerClient(base_url=url))  # so workers hold a shared base
    return env


@pytest.fixture
def w1_restored(hosts):
    """For tests that kill w1's daemon: its current pid, and it back afterwards."""
    yield {**hosts, **hosts_script("env")}
    hosts_script("restart w1")


def clear_project_from(project: Project, urls: list[str]) -> None:
    """After a test: the project's containers and content tags gone from each engine; a
    container left there fails the test."""
    for url in urls:
        client = docker.DockerClient(base_url=url)
        label = {"label": f"{LABEL_PROJECT}={project.name}"}
        leftover = client.containers.list(all=True, filters=label)
        for container in leftover:
            container.remove(force=True)
        for image in client.images.list(filters=label):
            for tag in image.tags:
                client.images.remove(tag, force=True)
        assert not leftover, f"containers left on {url}"
