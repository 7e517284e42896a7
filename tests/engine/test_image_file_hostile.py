"""`run --image FILE` with a file an attacker made, as a partition job meets it: a
decompression bomb, a FIFO, member names and links out of the archive. Each is one line
and exit 2 within seconds, and the worker's engine holds no new image and no container;
and a `build --output` killed mid-write leaves a temp file the next one removes.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import docker
import pytest
import zstandard

from tests.engine.conftest import LABEL_PROJECT, shards_toml
from tests.engine.test_image_file import SHARDS, _job_copy

GiB = 1 << 30


def _run_image(project, image: Path, worker: str, ceiling: int | None = None, timeout=60):
    """`shardrun run --image` in a fresh job folder (with the import's ceiling lowered to
    `ceiling` bytes, so that a bomb is fast to test); the result, its seconds, the job."""
    job = _job_copy(project, f"job-{time.monotonic_ns()}")
    patch = (
        ""
        if ceiling is None
        else (f"import shardrun.distribute.artifact.image_file as f; f.CEILING = {ceiling}; ")
    )
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{patch}import runpy; runpy.run_module('shardrun', run_name='__main__')",
            "run",
            "--plain",
            "--image",
            str(image),
            "--worker",
            worker,
        ],
        cwd=job,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return done, time.monotonic() - started, job


def _engine_state(url: str, project) -> tuple[set[str], list]:
    engine = docker.DockerClient(base_url=url)
    label = {"label": f"{LABEL_PROJECT}={project.name}"}
    return (
        {i.id for i in engine.images.list(all=True)},
        engine.containers.list(all=True, filters=label),
    )


def _assert_refused(done, job: Path, code: int, words: str) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
    assert " build " not in done.stdout  # nothing built, nothing started
    cache = job / ".shardrun" / "cache"
    assert not cache.exists() or list(cache.iterdir()) == []  # no partial file left


def _frames(*parts: bytes, zeros: int = 0) -> bytes:
    """zstd frames of `parts`, then of `zeros` bytes of zeros (a 128 MiB frame repeated:
    a few KB a GiB)."""
    compress = zstandard.ZstdCompressor().compress
    block = 128 << 20
    return b"".join(compress(p) for p in parts) + compress(bytes(block)) * (zeros // block)


@pytest.fixture
def w1_before(project, hosts):
    project.write("shards.toml", shards_toml(project, SHARDS))
    url = hosts["SHARDRUN_TEST_W1_UNIX"]
    yield url, _engine_state(url, project)[0]


def _nothing_new_on(url: str, project, images_before: set[str]) -> None:
    images, containers = _engine_state(url, project)
    assert images == images_before and containers == []


def test_a_60_gib_zero_bomb_stops_at_once_at_the_real_cap(project, w1_before):
    url, images = w1_before
    bomb = project.root.parent / "bomb.tar.zst"
    bomb.write_bytes(_frames(zeros=60 * GiB))

    done, seconds, job = _run_image(project, bomb, url)

    _assert_refused(done, job, 2, "follows the end of its tar archive")
    assert bomb.stat().st_size < 3_000_000 and seconds < 10
    _nothing_new_on(url, project, images)


def test_a_member_declaring_more_than_the_ceiling_stops_at_its_header(project, w1_before):
    url, images = w1_before
    big = tarfile.TarInfo("0/layer.tar")
    big.size = 100 * GiB  # past the real 64 GiB ceiling: refused before a byte of it
    bomb = project.root.parent / "declared.tar.zst"
    bomb.write_bytes(_frames(big.tobuf(tarfile.GNU_FORMAT), zeros=GiB))

    done, seconds, job = _run_image(project, bomb, url)

    _assert_refused(done, job, 2, "unpacks to more than 64 GiB")
    assert seconds < 10
    _nothing_new_on(url, project, images)


def test_a_bomb_of_many_members_stops_at_a_lowered_ceiling(project, w1_before):
    """Each member is small, together they pass the cap: counted as they are written."""
    url, images = w1_before
    zeros = _frames(zeros=128 << 20)
    bomb = project.root.parent / "members.tar.zst"
    with bomb.open("wb") as out:
        for n in range(64):  # 8 GiB in all
            member = tarfile.TarInfo(f"{n}/layer.tar")
            member.size = 128 << 20
            out.write(_frames(member.tobuf(tarfile.GNU_FORMAT)) + zeros)

    done, seconds, job = _run_image(project, bomb, url, ceiling=512 << 20)

    _assert_refused(done, job, 2, "unpacks to more than 0.5 GiB")
    assert seconds < 20
    _nothing_new_on(url, project, images)


def test_a_fifo_named_like_an_image_file_is_refused_at_once(project, w1_before):
    url, images = w1_before
    fifo = project.root.parent / "image.tar.zst"
    os.mkfifo(fifo)

    done, seconds, job = _run_image(project, fifo, url, timeout=30)

    _assert_refused(done, job, 2, "a FIFO, not a regular file")
    assert seconds < 10
    _nothing_new_on(url, project, images)


def _rewrite(image: Path, out: Path, change) -> None:
    """`image` (a plain docker archive) as `out`, each member passed through `change`
    (member, data) -> [(member, data), ...]."""
    with tarfile.open(image) as src, tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            for new, content in change(member, data):
                dst.addfile(new, io.BytesIO(content) if content is not None else None)


def test_member_names_and_links_out_of_the_archive_load_nothing(project, w1_before, tmp_path):
    url, images = w1_before
    image = project.root.parent / "image.tar"
    built = project.shardrun("build", "--plain", "--output", str(image))
    assert built.returncode == 0, built.stdout + built.stderr
    with tarfile.open(image) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
    first = entry["Layers"][0]

    def manifest_names(layer: str, plant: bool = False):
        """The first layer named `layer` in manifest.json (and, with `plant`, a member of
        that name in the archive, so a lookup by name alone would find it)."""

        def change(member, data):
            if member.name != "manifest.json":
                return [(member, data)]
            data = json.dumps([{**entry, "Layers": [layer, *entry["Layers"][1:]]}]).encode()
            member.size = len(data)
            planted = tarfile.TarInfo(layer)
            planted.size = 5
            return [(planted, b"owned")] * plant + [(member, data)]

        return change

    def as_link(target: str):
        def change(member, data):
            if member.name != first:
                return [(member, data)]
            link = tarfile.TarInfo(first)
            link.type, link.linkname = tarfile.SYMTYPE, target
            return [(link, None)]

        return change

    def with_member(name: str):
        def change(member, data):
            if member.name != "manifest.json":
                return [(member, data)]
            planted = tarfile.TarInfo(name)
            planted.size = 5
            return [(planted, b"owned"), (member, data)]

        return change

    cases = {
        "dotdot": (manifest_names("../../etc/passwd"), "not a relative path inside its folder"),
        "dotdot-planted": (
            manifest_names("../../etc/passwd", plant=True),
            "not a relative path inside its folder",
        ),
        "absolute": (manifest_names("/etc/passwd"), "not a relative path inside its folder"),
        "symlink": (as_link("../../../../etc/passwd"), "outside the archive"),
        "symlink-abs": (as_link("/etc/passwd"), "outside the archive"),
        "member": (with_member("../../etc/passwd"), "not a relative path inside its folder"),
    }
    for name, (change, words) in cases.items():
        hostile = tmp_path / f"{name}.tar"
        _rewrite(image, hostile, change)

        done, seconds, job = _run_image(project, hostile, url)

        _assert_refused(done, job, 2, words)
        assert seconds < 30
    _nothing_new_on(url, project, images)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_a_killed_build_output_leaves_a_temp_file_the_next_one_removes(project):
    project.write("shards.toml", shards_toml(project, SHARDS))
    # Big enough that writing the image file takes a while: random, so it compresses little.
    (project.root / "payload.txt").write_bytes(os.urandom(256 << 20))
    out = project.root.parent / "dist"
    built = project.shardrun("build", "--plain")  # the image and its cached tarball
    assert built.returncode == 0, built.stdout + built.stderr

    writer = project.popen("build", "--plain", "--output", str(out / "image.tar.zst"))
    deadline = time.monotonic() + 60
    # One with data in it: the image file's, not the probe made and removed before the build.
    while not (
        temps := [p for p in out.glob(f".image.tar.zst.{writer.pid}.*.tmp") if _size(p) > 1 << 20]
    ):
        assert writer.poll() is None and time.monotonic() < deadline, "no temp file was written"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.communicate(timeout=30)
    assert temps[0].exists()  # the killed writer's, left for good until now

    again = project.shardrun("build", "--plain", "--output", str(out / "image.tar.zst"))

    assert again.returncode == 0, again.stdout + again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["image.tar.zst"]
