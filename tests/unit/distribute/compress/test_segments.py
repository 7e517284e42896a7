"""An archive cut into ranges: each large layer blob on its own, keyed by its digest, so a
docker archive and an OCI layout of the same image share their layers' compression."""

from __future__ import annotations

import gzip
import io
import itertools
import tarfile
from pathlib import Path

import pytest

from shardrun.distribute.artifact import oci_layout
from shardrun.distribute.compress import segments
from shardrun.distribute.compress.segments import SHARED_LEAST, Segment
from tests.unit.distribute.artifact.test_layers import (
    ID1,
    ID2,
    ID3,
    build_tarball,
    diff_id,
    layer_tar,
)

BIG = SHARED_LEAST + 300_000


def cut(path: Path) -> list[Segment]:
    with open(path, "rb") as archive:
        return segments.cut(archive, path.stat().st_size)


def _covers(segments: list[Segment], path: Path) -> None:
    assert segments[0].start == 0 and segments[-1].end == path.stat().st_size
    assert all(a.end == b.start for a, b in itertools.pairwise(segments))


def _bytes(path: Path, segment: Segment) -> bytes:
    with open(path, "rb") as f:
        f.seek(segment.start)
        return f.read(segment.end - segment.start)


@pytest.fixture
def layers_() -> dict[str, bytes]:
    return {ID1: layer_tar("base.txt", BIG), ID2: layer_tar("app.txt", BIG),
            ID3: layer_tar("top.txt", 20_000)}  # fmt: skip


def test_a_docker_archive_keys_each_large_layer_by_its_diff_id(tmp_path: Path, layers_):
    path = tmp_path / "image.tar"
    diff_ids = build_tarball(path, [ID1, ID2, ID3], layers_)

    segments = cut(path)

    _covers(segments, path)
    keyed = [s for s in segments if s.key]
    assert [s.key for s in keyed] == diff_ids[:2]  # the 20 KB top layer goes with the rest
    assert [_bytes(path, s) for s in keyed] == [layers_[ID1], layers_[ID2]]


def test_an_oci_layout_of_the_same_image_shares_the_layer_it_carries(tmp_path: Path, layers_):
    docker = tmp_path / "image.tar"
    diff_ids = build_tarball(docker, [ID1, ID2, ID3], layers_)
    oci = tmp_path / "oci1.tar"
    with open(oci, "wb") as out:
        oci_layout.write_from_save([docker.read_bytes()], {diff_ids[0]}, "shardrun/image:x", out)

    in_docker = {s.key: _bytes(docker, s) for s in cut(docker) if s.key}
    in_oci = {s.key: _bytes(oci, s) for s in cut(oci) if s.key}

    _covers(cut(oci), oci)
    assert list(in_oci) == [diff_ids[1]]  # the left-out base is not in it
    assert in_oci[diff_ids[1]] == in_docker[diff_ids[1]] == layers_[ID2]


def test_a_compressed_layer_file_is_not_taken_for_its_diff_id(tmp_path: Path):
    # As a containerd-store engine may save: the manifest's layer file holds the gzip blob,
    # while the config's diff ID is the digest of what it decompresses to.
    layer = layer_tar("base.txt", BIG)
    saved = tmp_path / "saved.tar"
    [layer_id] = build_tarball(saved, [ID1], {ID1: layer})
    path = tmp_path / "image.tar"
    with tarfile.open(saved) as src, tarfile.open(path, "w") as dst:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name.endswith("layer.tar"):
                packed = gzip.compress(layer, compresslevel=0)  # stored: still large
                member.size, data = len(packed), io.BytesIO(packed)
            dst.addfile(member, data)

    assert layer_id == diff_id(layer)
    assert [s.key for s in cut(path)] == [""]


def test_an_archive_without_layers_is_one_range(tmp_path: Path):
    path = tmp_path / "plain.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = BIG
        tar.addfile(info, io.BytesIO(b"x" * BIG))
    assert cut(path) == [Segment(0, path.stat().st_size)]
