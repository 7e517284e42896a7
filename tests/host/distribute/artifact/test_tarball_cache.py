"""The tarball cache on disk: pruning, temp files, locks, whole thin tarballs, a full
disk, and the memory of workers that refuse thin loads (no engine)."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import pytest

from shardrun.distribute.artifact import layers
from shardrun.distribute.artifact.tarball import Artifact, prune
from shardrun.distribute.deliver import thin_tarball
from shardrun.distribute.worker_facts import WorkerFacts
from shardrun.model.errors import ConfigError, DiskFull
from shardrun.model.image_ref import content_tag
from shardrun.state.files import discard_temp_files, exclusive, sweep_stale_temp, temp_file
from tests.fakes.engine import FakeImage
from tests.tmpfs import tmpfs
from tests.unit.distribute.artifact.test_layers import (
    ID1,
    ID2,
    build_tarball,
    image_tar,  # noqa: F401 - a fixture: a docker-save tarball
    layer_tar,
)


def _image_id(tarball: Path) -> str:
    """The ID of the image in a save tarball: its config blob's name is its sha256."""
    with tarfile.open(tarball) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
    return "sha256:" + entry["Config"].removesuffix(".json")


def _artifact(path: Path) -> Artifact:
    return Artifact(image_id=_image_id(path), path=path, size=path.stat().st_size, reused=False)


def _leftovers(folder: Path) -> list[str]:
    """Temp and lock files: neither outlives the writer that made it."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".lock")))


def test_two_workers_writing_one_thin_tarball_at_once_both_get_it(image_tar: Path):  # noqa: F811
    artifact = _artifact(image_tar)
    saved = layers.read_saved(image_tar)
    omit = layers.omitted_files(saved, 1)
    results, errors = [], []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            results.append(thin_tarball(artifact, omit, 1))
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    thin = results[0]
    assert thin.name == f"{image_tar.stem}.thin1.tar"
    assert layers.read_saved(thin).layer_paths == saved.layer_paths  # manifest intact
    assert _leftovers(thin.parent) == []


def test_refusals_are_remembered_across_runs(tmp_path: Path):
    path = tmp_path / "workers.json"
    first = WorkerFacts(path)
    assert first.allows_thin("ssh://ci@box")
    first.refuse_thin("ssh://ci@box")

    again = WorkerFacts(path)

    assert not again.allows_thin("ssh://ci@box")
    assert again.allows_thin("tcp://other:2375")
    assert json.loads(path.read_text()) == {"thin_refused": ["ssh://ci@box"]}


def test_a_corrupt_refusals_file_is_an_empty_memory(tmp_path: Path):
    path = tmp_path / "workers.json"
    path.write_text("{not json")
    assert WorkerFacts(path).allows_thin("ssh://ci@box")


# ---- pruning ----------------------------------------------------------------------------


def _cached_image(cache: Path, n: int, used: float) -> str:
    """A full and a thin tarball of image number `n`, last used at `used` (the mtime)."""
    image = f"{n:064x}"
    for name in (f"{image}.tar", f"{image}.thin1.tar"):
        (cache / name).write_bytes(b"tarball")
        os.utime(cache / name, (used, used))
    return image


def _images_in(cache: Path) -> set[str]:
    return {p.name.split(".")[0] for p in cache.iterdir() if p.name.endswith(".tar")}


def test_four_builds_in_a_row_leave_the_three_most_recently_used_images(tmp_path: Path):
    now = time.time()
    oldest, older, old, new = (_cached_image(tmp_path, n, now - 100 + n) for n in range(4))

    prune(tmp_path, keep=tmp_path / f"{new}.tar")

    assert _images_in(tmp_path) == {older, old, new}
    assert (tmp_path / f"{old}.thin1.tar").exists()  # a kept image keeps its thin tarballs
    assert not (tmp_path / f"{oldest}.thin1.tar").exists()


def test_recent_use_not_age_decides_what_stays(tmp_path: Path):
    now = time.time()
    reused = _cached_image(tmp_path, 1, now - 10)  # the oldest build, but used a moment ago
    dropped = _cached_image(tmp_path, 2, now - 50)
    kept = [_cached_image(tmp_path, n, now - 40 + n) for n in (3, 4)]

    prune(tmp_path, keep=tmp_path / f"{kept[-1]}.tar")

    assert _images_in(tmp_path) == {reused, *kept}
    assert dropped not in _images_in(tmp_path)


def test_pruning_leaves_other_files_and_lone_thin_tarballs_of_old_images_go(tmp_path: Path):
    now = time.time()
    images = [_cached_image(tmp_path, n, now - 100 + n) for n in range(3)]
    lone = f"{9:064x}.thin2.tar"  # its full tarball was deleted by hand
    (tmp_path / lone).write_bytes(b"thin")
    writing = tmp_path / f".{10:064x}.tar.{os.getpid()}.0123abcd.tmp"  # a live writer's
    writing.write_bytes(b"half")
    (tmp_path / "notes.txt").write_text("mine")

    prune(tmp_path, keep=tmp_path / f"{images[-1]}.tar")

    assert not (tmp_path / lone).exists()
    assert writing.exists() and (tmp_path / "notes.txt").exists()
    assert _images_in(tmp_path) == set(images)


# ---- temp files ---------------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_temp_files_of_a_dead_writer_are_swept_and_a_live_ones_stay(tmp_path: Path):
    image, dead, live = "ab" * 32, _dead_pid(), os.getpid()
    stale = [
        f".{image}.tar.{dead}.0123abcd.tmp",  # a save
        f".{image}.thin2.tar.{dead}.89efcdab.tmp",  # a thin tarball
        f".{image}.tar.{dead}.tmp",  # a save by an older version
    ]
    kept = [
        f".{image}.tar.{live}.0123abcd.tmp",
        f".{image}.thin1.tar.{live}.deadbeef.tmp",
        f"{image}.tar",
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"part")

    assert sweep_stale_temp(tmp_path) == 3

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_an_older_versions_thin_temp_file_goes_once_it_is_old(tmp_path: Path):
    # Written through mkstemp: no pid in the name, so only its age tells.
    old = tmp_path / f".{'ab' * 32}.thin1.tar.k3j_9a8b.tmp"
    fresh = tmp_path / f".{'ab' * 32}.thin2.tar.x7y_2c4d.tmp"
    for path in (old, fresh):
        path.write_bytes(b"part")
    os.utime(old, (time.time() - 7200, time.time() - 7200))

    assert sweep_stale_temp(tmp_path) == 1
    assert not old.exists() and fresh.exists()


def test_sweeping_a_missing_cache_finds_nothing(tmp_path: Path):
    assert sweep_stale_temp(tmp_path / "cache") == 0


def test_a_lock_file_left_by_a_killed_holder_is_swept_and_a_held_one_stays(tmp_path: Path):
    left = tmp_path / f".{'cd' * 32}.lock"
    left.write_bytes(b"")
    held = tmp_path / f"{'ef' * 32}.tar"

    with exclusive(held):
        sweep_stale_temp(tmp_path)
        assert (tmp_path / f".{'ef' * 32}.lock").exists()

    assert not left.exists()
    assert _leftovers(tmp_path) == []  # the holder removed its own lock file


def test_a_temp_file_is_named_by_its_writer_and_removed_unless_published(tmp_path: Path):
    final = tmp_path / f"{'ab' * 32}.tar"
    with temp_file(final, "the image tarball", 10) as tmp:
        tmp.file.write(b"half")
        name = tmp.path.name
    assert re.fullmatch(rf"\.{final.name}\.{os.getpid()}\.[0-9a-f]{{8}}\.tmp", name)
    assert list(tmp_path.iterdir()) == []

    with temp_file(final, "the image tarball", 10) as tmp:
        tmp.file.write(b"whole")
        tmp.publish()
    assert [p.name for p in tmp_path.iterdir()] == [final.name]
    assert final.read_bytes() == b"whole"


def test_discard_removes_the_temp_files_being_written_and_a_late_writer_makes_none(
    tmp_path: Path,
):
    finals = [tmp_path / f"{'ab' * 32}.tar", tmp_path / f"{'ab' * 32}.thin1.tar"]
    with contextlib.ExitStack() as writers:  # two writers still at work, as at Ctrl-C
        temps = [writers.enter_context(temp_file(f, "a tarball", 10)) for f in finals]
        for tmp in temps:
            tmp.file.write(b"part")

        discard_temp_files()

        assert list(tmp_path.iterdir()) == []
        temps[0].file.write(b"more")  # an abandoned writer thread goes on: into no file
        temps[0].file.flush()
        with pytest.raises(FileNotFoundError):
            temps[0].publish()
    assert list(tmp_path.iterdir()) == []


# ---- locks --------------------------------------------------------------------------------


def _thin_in_child(artifact: Artifact, omit: set[str], out) -> None:
    path = thin_tarball(artifact, omit, 2)
    out.put(path.stat().st_ino)


def test_a_second_process_waits_for_the_thin_tarball_being_written_and_reuses_it(
    image_tar: Path,  # noqa: F811
):
    artifact = _artifact(image_tar)
    omit = layers.omitted_files(layers.read_saved(image_tar), 2)  # layer 2's file
    thin = image_tar.with_name(f"{image_tar.stem}.thin2.tar")
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()

    with exclusive(thin):  # this process is writing it
        child = spawn.Process(target=_thin_in_child, args=(artifact, omit, out))
        child.start()
        time.sleep(1.5)  # time enough to start and write, were it not for the lock
        assert child.is_alive()
        assert not thin.exists() and [p.name for p in thin.parent.glob("*.tmp")] == []
        layers.write_thin(image_tar, omit, thin)
        written = thin.stat().st_ino

    assert out.get(timeout=30) == written  # it found the whole tarball and kept it
    child.join(timeout=30)
    assert child.exitcode == 0
    assert _leftovers(thin.parent) == []


# ---- whole thin tarballs ------------------------------------------------------------------


def test_a_cut_off_thin_tarball_is_written_again(image_tar: Path):  # noqa: F811
    artifact = _artifact(image_tar)
    omit = layers.omitted_files(layers.read_saved(image_tar), 2)  # layer 2's file
    thin = thin_tarball(artifact, omit, 2)
    whole = thin.read_bytes()
    os.truncate(thin, len(whole) // 2)  # as a killed writer or a full disk leaves it

    again = thin_tarball(artifact, omit, 2)

    assert again == thin
    assert thin.read_bytes() == whole
    assert layers.is_complete(thin, artifact.image_id, omit)


def test_a_thin_tarball_of_another_image_is_written_again(image_tar: Path):  # noqa: F811
    artifact = _artifact(image_tar)
    omit = layers.omitted_files(layers.read_saved(image_tar), 2)  # layer 2's file
    thin = image_tar.with_name(f"{image_tar.stem}.thin2.tar")
    other = image_tar.with_name("other.tar")
    build_tarball(other, [ID1], {ID1: layer_tar("other.txt", 1_000)})
    os.replace(other, thin)

    thin_tarball(artifact, omit, 2)

    assert layers.is_complete(thin, artifact.image_id, omit)


# ---- a full disk --------------------------------------------------------------------------


def test_a_full_disk_while_writing_a_thin_tarball_is_disk_full_and_leaves_no_file(
    tmp_path: Path,
):
    with tmpfs(tmp_path / "cache", "3m") as cache:
        full = cache / "image.tar"
        build_tarball(
            full,
            [ID1, ID2],
            {ID1: layer_tar("base.txt", 200_000), ID2: layer_tar("app.txt", 1_800_000)},
        )
        artifact = _artifact(full)
        omit = layers.omitted_files(layers.read_saved(full), 1)  # ~1.8 MB, ~1 MB free

        with pytest.raises(DiskFull) as caught:
            thin_tarball(artifact, omit, 1)

        message = str(caught.value)
        assert message.startswith(f"{cache}: no room for a thin tarball: it needs about 2 MB")
        assert "MB are free; free some space there" in message and "\n" not in message
        assert caught.value.exit_code == 4
        assert [p.name for p in cache.iterdir()] == ["image.tar"]


# ---- the image file of hosted CI (distribute/image_file.py) --------------------------


@pytest.mark.parametrize(
    "name, codec",
    [
        ("image.tar.zst", "zstd"),
        ("ci/image.tar.gz", "gzip"),
        ("x.tgz", "gzip"),
        ("i.tar", "none"),
    ],
)
def test_an_image_files_name_says_its_format(name, codec):
    from shardrun.distribute.artifact import image_file

    assert image_file.codec_of(Path(name)) == codec


@pytest.mark.parametrize("name", ["image.zip", "image", ".tar.zst", "image.zst"])
def test_a_name_that_says_no_format_is_a_usage_error(name):
    from shardrun.distribute.artifact import image_file

    with pytest.raises(ConfigError, match=r"end it with .tar.zst"):
        image_file.codec_of(Path(name))


@pytest.mark.parametrize("name", ["image.tar.zst", "image.tar.gz", "image.tar"])
def test_an_image_file_reads_back_into_the_cache_as_the_same_tarball(tmp_path, name):
    from shardrun.distribute.artifact import image_file

    image = FakeImage.make(b"base", b"top")
    source = tmp_path / "saved.tar"
    source.write_bytes(image.tarball([content_tag(image.id)]))
    written = image_file.write(source, image.id, tmp_path / name)
    assert written.raw_size == source.stat().st_size

    image_id, cached, reused = image_file.import_into_cache(written.path, tmp_path / "cache")
    assert (image_id, reused) == (image.id, False)
    assert cached.read_bytes() == source.read_bytes()
    assert image_file.import_into_cache(written.path, tmp_path / "cache")[2] is True
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [cached.name]


@pytest.mark.parametrize("name", ["image.tar.zst", "image.tar.gz", "image.tar"])
def test_the_image_file_is_written_while_the_engine_saves_or_from_the_cached_tarball(
    tmp_path, name
):
    from shardrun.distribute.artifact import image_file
    from tests.fakes.engine import FakeEngine

    engine = FakeEngine()
    image = FakeImage.make(b"base" * 1000, b"top" * 1000)
    engine.add_image(image)
    cache = tmp_path / "cache"
    saved, written = image_file.save_and_write(engine, image.id, cache, tmp_path / name)
    assert not saved.reused and len(engine.called("save")) == 1
    assert written.raw_size == saved.size  # the same bytes, fed as they were saved
    assert image_file.import_into_cache(written.path, tmp_path / "back")[0] == image.id

    written.path.unlink()
    again, rewritten = image_file.save_and_write(engine, image.id, cache, tmp_path / name)
    assert again.reused and len(engine.called("save")) == 1  # from the cache, no new save
    assert rewritten.path.read_bytes() and rewritten.raw_size == saved.size
    assert _leftovers(tmp_path) == [] and _leftovers(cache) == []


def test_a_save_cut_off_leaves_neither_the_tarball_nor_the_image_file(tmp_path):
    from shardrun.distribute.artifact import image_file
    from shardrun.model.errors import TransportError
    from tests.fakes.engine import FakeEngine

    class CutOff(FakeEngine):
        def save(self, name, chunk_size):
            blocks = list(super().save(name, 64))
            yield from blocks[: len(blocks) // 2]
            raise TransportError("the connection dropped mid-save")

    engine = CutOff()
    image = FakeImage.make(b"base" * 1000, b"top" * 1000)
    engine.add_image(image)
    with pytest.raises(TransportError):
        image_file.save_and_write(engine, image.id, tmp_path / "cache", tmp_path / "image.tar.zst")
    assert not (tmp_path / "image.tar.zst").exists()
    assert _leftovers(tmp_path) == [] and list((tmp_path / "cache").glob("*.tar")) == []
