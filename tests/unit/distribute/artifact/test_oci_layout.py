"""shardrun.oci_layout and the containerd-store save format (blobs/sha256/..., where a
layer BuildKit built is a gzip blob whose digest is not its diff ID). Pure."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from shardrun.distribute.artifact import layers, oci_layout
from shardrun.model.image_ref import content_tag


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def hybrid_save(base: bytes, built: bytes) -> tuple[bytes, str, list[str], str]:
    """A save as dockerd 28 on the containerd store writes it: the base layer plain, the
    built one gzip. Returns (tarball, image ID, diff IDs, the gzip blob's digest)."""
    gz = gzip.compress(built, mtime=0)
    diff_ids = [sha(base), sha(built)]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image_id = "sha256:" + "9" * 64  # a manifest digest: not the config's
    manifest = [
        {
            "Config": "blobs/sha256/" + sha(config)[7:],
            "RepoTags": [content_tag(image_id)],
            "Layers": ["blobs/sha256/" + sha(base)[7:], "blobs/sha256/" + sha(gz)[7:]],
        }
    ]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for blob in sorted([base, gz, config], key=sha):
            member(tar, "blobs/sha256/" + sha(blob)[7:], blob)
        member(tar, "index.json", b"{}")
        member(tar, "manifest.json", json.dumps(manifest).encode())
        member(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return out.getvalue(), image_id, diff_ids, sha(gz)


def test_an_oci_layout_names_a_gzip_layer_by_its_blob_and_leaves_out_the_held_base(tmp_path: Path):
    save, image_id, diff_ids, gz = hybrid_save(b"base layer " * 50, b"built layer " * 50)
    path = tmp_path / "thin.tar"
    with open(path, "wb") as out:
        oci_layout.write_from_save([save], {diff_ids[0]}, content_tag(image_id), out)

    assert oci_layout.is_complete(path, image_id, {diff_ids[0]})
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
        [described] = json.load(tar.extractfile("index.json"))["manifests"]
        manifest = json.load(tar.extractfile("blobs/sha256/" + described["digest"][7:]))
    assert [(layer["mediaType"], layer["digest"]) for layer in manifest["layers"]] == [
        (oci_layout.LAYER, diff_ids[0]),
        (oci_layout.GZIP_LAYER, gz),
    ]
    assert "blobs/sha256/" + diff_ids[0][7:] not in names  # the held base is left out
    assert oci_layout.compressed_blobs(path) == {diff_ids[1]: gz}


def test_a_thin_docker_archive_cuts_a_held_layer_whatever_its_file_is_called(tmp_path):
    save, image_id, diff_ids, gz = hybrid_save(b"base layer " * 50, b"built layer " * 50)
    path = tmp_path / "thin.tar"
    with open(path, "wb") as out:
        omitted = layers.write_thin_from_stream([save], {diff_ids[0], gz}, out)

    assert omitted == {"blobs/sha256/" + diff_ids[0][7:], "blobs/sha256/" + gz[7:]}
    assert layers.is_complete(path, image_id, omitted)  # its config is named by digest
    assert layers.compressed_blobs(path) == {diff_ids[1]: gz}
