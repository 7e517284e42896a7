"""A warm build on an engine that never built the project (`--cache-from`), as every job
of a hosted CI matrix starts: f1 (dockerd 20.10, graph driver) and f4 (dockerd 28, the
containerd store) are started with a new, empty data root for each build, given only the
base image (loaded from one saved file, so its ID is the one the cache was built on) and
the previous run's image file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from tests.engine.conftest import BUSYBOX_IMAGE, hosts_script, shards_toml

# The dependency step stands for a package install: slow, and what a source change must
# not run again. Its marker is the time it ran: the same marker means it did not run.
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN sleep 1 && date +%s%N > /deps-marker
COPY src.txt /src.txt
"""
SHARDS = '[[shard]]\nname = "s"\nnetwork = "none"\ncommand = ["cat", "/deps-marker"]\n'


@pytest.fixture(scope="module")
def base_file(docker_client, busybox_image, tmp_path_factory) -> Path:
    """The base image as one saved file: every fresh engine gets the same image ID."""
    path = tmp_path_factory.mktemp("base") / "busybox.tar"
    with path.open("wb") as out:
        for chunk in docker_client.images.get(busybox_image).save(named=True):
            out.write(chunk)
    return path


def fresh_engine(name: str, base_file: Path) -> str:
    """A new, empty engine (`scripts/worker-hosts fresh`) holding only the base image."""
    url = hosts_script(f"fresh {name}")[f"SHARDRUN_TEST_{name.upper()}_UNIX"]
    client = docker.DockerClient(base_url=url)
    client.images.load(base_file.read_bytes())
    assert client.images.get(BUSYBOX_IMAGE)
    client.close()
    return url


def _marker(url: str, image_id: str) -> str:
    client = docker.DockerClient(base_url=url)
    try:
        return client.containers.run(image_id, ["cat", "/deps-marker"], remove=True).decode()
    finally:
        client.close()


def _built(stdout: str) -> tuple[int, int, str]:
    found = re.search(r"built +\S+ in [\d.]+s \((\d+)/(\d+) steps cached(.*)\)", stdout)
    assert found, stdout
    return int(found[1]), int(found[2]), found[3]


def test_a_fresh_engine_builds_warm_from_the_last_image_file(project, hosts, base_file, tmp_path):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    project.write("shards.toml", shards_toml(project, SHARDS))
    first, second = tmp_path / "first.tar.zst", tmp_path / "second.tar.zst"

    url = fresh_engine("f1", base_file)
    cold = project.shardrun("build", "--plain", "--builder", url, "--output", str(first))
    assert cold.returncode == 0, cold.stdout + cold.stderr
    assert _built(cold.stdout)[0] == 0  # nothing to take steps from
    marker = _marker(url, cold.stdout.splitlines()[-2])

    # The next CI job: a new engine, a fresh checkout with one source changed, and only
    # the last image file carried over.
    url = fresh_engine("f1", base_file)
    shutil.rmtree(project.root / ".shardrun")
    project.write("src.txt", "two\n")
    warm = project.shardrun(
        "build", "--plain", "--builder", url, "--output", str(second), "--cache-from", str(first)
    )
    assert warm.returncode == 0, warm.stdout + warm.stderr
    cached, total, source = _built(warm.stdout)
    assert (cached, total) == (1, 2), warm.stdout  # the RUN from the cache, the COPY afresh
    assert source == f", cache from {first}"
    assert "warning" not in warm.stdout
    assert _marker(url, warm.stdout.splitlines()[-2]) == marker  # the step did not run


def test_on_the_containerd_store_an_image_file_is_one_warning_and_a_cold_build(
    project, hosts, base_file, tmp_path
):
    """dockerd's BuildKit on that store reads a cache from a registry only (cache_sources)."""
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    project.write("shards.toml", shards_toml(project, SHARDS))
    first = tmp_path / "first.tar.zst"
    url = fresh_engine("f4", base_file)
    cold = project.shardrun("build", "--plain", "--builder", url, "--output", str(first))
    assert cold.returncode == 0, cold.stdout + cold.stderr

    url = fresh_engine("f4", base_file)
    project.write("src.txt", "two\n")
    warm = project.shardrun("build", "--plain", "--builder", url, "--cache-from", str(first))
    assert warm.returncode == 0, warm.stdout + warm.stderr
    warnings = [line for line in warm.stdout.splitlines() if " warning " in line]
    assert len(warnings) == 1 and "reads a cache only from a registry" in warnings[0]
    assert _built(warm.stdout) == (0, 2, "")
    # The image file itself is good: a partition job on that store runs it.
    job = project.root.parent / "job"
    shutil.copytree(project.root, job, ignore=shutil.ignore_patterns(".shardrun"))
    ran = subprocess.run(
        [sys.executable, "-m", "shardrun", "run", "--plain", "--image", str(first), "-w", url],
        cwd=job,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_cache_from_that_cannot_be_used_is_one_warning_and_a_cold_build(project, tmp_path):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    project.write("shards.toml", shards_toml(project, SHARDS))
    whole, truncated = tmp_path / "whole.tar.zst", tmp_path / "cut.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(whole))
    assert built.returncode == 0, built.stdout + built.stderr
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])

    for source, why in (
        (tmp_path / "missing.tar.zst", "no such file"),
        (truncated, "is truncated or damaged"),
        ("no-such-image:latest", "nor an image of that ID or tag"),
    ):
        out = project.shardrun("build", "--plain", "--cache-from", str(source))
        assert out.returncode == 0, out.stdout + out.stderr
        warnings = [line for line in out.stdout.splitlines() if " warning " in line]
        assert len(warnings) == 1, out.stdout
        assert why in warnings[0] and warnings[0].endswith("building without it")
        assert "cache from" not in out.stdout
        assert not list((project.root / ".shardrun" / "cache").glob("import-*"))


def test_another_projects_image_file_is_not_used(project, tmp_path):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("src.txt", "one\n")
    toml = shards_toml(project, SHARDS)
    project.write("shards.toml", toml.replace(f'"{project.name}"', f'"{project.name}-other"', 1))
    other = tmp_path / "other.tar.zst"
    built = project.shardrun("build", "--plain", "--output", str(other))
    assert built.returncode == 0, built.stdout + built.stderr

    project.write("shards.toml", toml)
    out = project.shardrun("build", "--plain", "--cache-from", str(other))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f'an image of project "{project.name}-other", not "{project.name}"' in out.stdout
