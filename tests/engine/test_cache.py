"""The tarball cache against a real engine: runs sharing it, thin tarballs that are not
whole, and a cache on a disk too small for the image."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import docker

from shardrun.distribute import deliver as distribute
from shardrun.distribute.artifact import layers
from shardrun.distribute.artifact import tarball as artifact
from shardrun.distribute.compress.shared_stream import SharedStreams
from shardrun.distribute.send import Link
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.engine.docker_engine import DockerEngine
from shardrun.model.image_ref import held_chain_ids
from tests.engine.conftest import BUSYBOX_IMAGE, shards_toml
from tests.tmpfs import tmpfs

ROOT = Path(__file__).resolve().parents[2]
# The CLI of this checkout, not whichever shardrun is installed.
THIS_CHECKOUT = {
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
}

ONE_SHARD = """
[[shard]]
name = "noop"
command = ["true"]
"""


def big_dockerfile(megabytes: int, unique: str = "") -> str:
    """busybox plus a file of random bytes (no registry, no network needed). A `unique`
    layer right above the base makes sure no other image on the engine shares more."""
    return (
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
        + (f"RUN echo {unique} > /unique.txt\n" if unique else "")
        + f"RUN head -c {megabytes * 1_000_000} /dev/urandom > /big\n"
    )


def build(project, dockerfile: str) -> tuple[str, Path]:
    """`shardrun build` of the project: the image ID and the tarball it saved."""
    project.write("Dockerfile.test", dockerfile)
    project.write("shards.toml", shards_toml(project, ONE_SHARD))
    built = project.shardrun("build", "--plain", env=THIS_CHECKOUT)
    assert built.returncode == 0, built.stderr
    image_id, tarball = built.stdout.strip().splitlines()[-2:]
    return image_id, project.root / tarball


# ---- two runs at once -------------------------------------------------------------------


def _ensure_in_child(image_id: str, cache: str, start, out) -> None:
    engine = DockerEngine(docker.from_env())
    start.wait()  # both ask at the same moment
    saved = artifact.ensure(engine, image_id, Path(cache))
    out.put((saved.reused, saved.path.stat().st_ino))


def test_two_runs_needing_one_tarball_at_once_save_it_once(project):
    image_id, tarball = build(project, big_dockerfile(40))
    cache = tarball.parent
    tarball.unlink()  # both runs now need it saved
    spawn = multiprocessing.get_context("spawn")
    start, out = spawn.Barrier(2), spawn.Queue()
    children = [
        spawn.Process(target=_ensure_in_child, args=(image_id, str(cache), start, out))
        for _ in range(2)
    ]
    for child in children:
        child.start()

    results = [out.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)

    assert [child.exitcode for child in children] == [0, 0]
    assert sorted(reused for reused, _ in results) == [False, True]
    assert len({inode for _, inode in results}) == 1
    assert {inode for _, inode in results} == {tarball.stat().st_ino}
    assert [p.name for p in cache.iterdir()] == [tarball.name]  # no temp or lock file


# ---- thin tarballs that are not whole ---------------------------------------------------


def thin_for_local_engine(project, docker_client) -> tuple[str, Path, Path, set[str]]:
    """A built image the engine no longer holds, though it holds its base: a load of it
    is a thin one. The image ID, its tarball, where its thin tarball goes, what it omits."""
    image_id, tarball = build(project, big_dockerfile(1, unique=uuid.uuid4().hex))
    docker_client.images.remove(image_id, force=True)
    saved = layers.read_saved(tarball)
    base = docker_client.images.get(BUSYBOX_IMAGE).attrs["RootFS"]["Layers"]
    skip = layers.held_prefix(saved.diff_ids, held_chain_ids([base]))
    assert skip == 1
    thin = tarball.with_name(f"{tarball.stem}.thin{skip}.tar")
    return image_id, tarball, thin, layers.omitted_files(saved, skip)


def deliver_locally(
    docker_client, project, image_id: str, tarball: Path, facts: WorkerFacts
) -> distribute.Delivery:
    engine = DockerEngine(docker_client)
    streams = SharedStreams()
    try:
        return distribute.deliver(
            engine,
            Link("local", docker_client.api.base_url, "none", streams, facts, lambda _: None),
            artifact.OnDemand(engine, image_id, tarball.parent, lambda _: None),
            project.name,
        )
    finally:
        streams.close()


def test_a_cut_off_thin_tarball_is_rewritten_and_the_worker_still_takes_thin_loads(
    project, docker_client, tmp_path
):
    image_id, tarball, thin, omit = thin_for_local_engine(project, docker_client)
    layers.write_thin(tarball, omit, thin)
    os.truncate(thin, thin.stat().st_size // 2)  # as a killed run or a full disk left it
    memory = tmp_path / "workers.json"

    delivery = deliver_locally(docker_client, project, image_id, tarball, WorkerFacts(memory))

    assert delivery.mode == "thin"
    assert delivery.sent < delivery.full_size
    assert DockerEngine(docker_client).has_image(image_id)
    assert WorkerFacts(memory).allows_thin(docker_client.api.base_url)
    assert "thin_refused" not in json.loads(memory.read_text())
    assert layers.is_complete(thin, image_id, omit)


def with_manifest(src: Path, dest: Path, change: Callable[[list], None]) -> None:
    """A copy of a save tarball with its manifest.json changed by `change`."""
    with tarfile.open(src) as tar, tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as out:
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            if member.name == "manifest.json":
                manifest = json.load(data)
                change(manifest)
                blob = json.dumps(manifest).encode()
                member.size, data = len(blob), io.BytesIO(blob)
            out.addfile(member, data)


def test_an_engine_refusing_a_whole_thin_tarball_is_remembered_and_gets_the_full_one(
    project, docker_client, tmp_path
):
    image_id, tarball, thin, omit = thin_for_local_engine(project, docker_client)
    whole = tmp_path / "whole-thin.tar"
    layers.write_thin(tarball, omit, whole)
    # Whole by every check of ours, but the engine refuses it ("invalid manifest, layers
    # length mismatch"), as the containerd image store refuses any thin tarball.
    with_manifest(whole, thin, lambda m: m[0]["Layers"].append(m[0]["Layers"][-1]))
    assert layers.is_complete(thin, image_id, omit)
    memory = tmp_path / "workers.json"

    delivery = deliver_locally(docker_client, project, image_id, tarball, WorkerFacts(memory))

    assert delivery.mode == "full"
    assert DockerEngine(docker_client).has_image(image_id)
    assert not WorkerFacts(memory).allows_thin(docker_client.api.base_url)
    assert thin.exists()  # whole: kept, it was the engine that said no


# ---- a full disk ------------------------------------------------------------------------


def test_a_cache_too_small_for_the_image_is_one_error_line_and_exit_4(project):
    project.write("Dockerfile.test", big_dockerfile(150))
    project.write("shards.toml", shards_toml(project, ONE_SHARD))
    with tmpfs(project.root / ".shardrun" / "cache", "50m") as cache:
        built = project.shardrun("build", "--plain", env=THIS_CHECKOUT, timeout=300)
        left = sorted(p.name for p in cache.iterdir())

    assert built.returncode == 4, built.stderr
    lines = built.stderr.strip().splitlines()
    assert len(lines) == 1, built.stderr
    assert lines[0].startswith(f"shardrun: error: {cache}: no room for the image tarball: ")
    assert "MB are free; free some space there, or delete .shardrun/cache" in lines[0]
    assert "Traceback" not in built.stderr + built.stdout
    assert left == []
