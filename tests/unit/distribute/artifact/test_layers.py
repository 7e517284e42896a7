"""shardrun.layers: chain IDs, the held prefix, and the thin tarball that leaves it out.

The tarballs here are built with tarfile in the shape `docker save` writes on dockerd 20.10:
one folder per layer (VERSION, json, layer.tar), a duplicate layer saved as a relative
symlink to the first copy (moby image/tarexport/save.go), the config as <sha>.json and
manifest.json listing the layer files in order.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from shardrun.distribute.artifact.layers import (
    NotStreamable,
    SavedImage,
    held_prefix,
    is_complete,
    omitted_files,
    read_saved,
    thin_size,
    write_thin,
    write_thin_from_stream,
    write_thin_to,
)
from shardrun.model.image_ref import chain_ids, content_tag, held_chain_ids


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


D1, D2, D3, D4 = (sha(f"layer {n}") for n in range(1, 5))


def saved(diff_ids, layer_paths=None, links=None) -> SavedImage:
    paths = layer_paths or tuple(f"l{n}/layer.tar" for n in range(1, len(diff_ids) + 1))
    return SavedImage(layer_paths=tuple(paths), diff_ids=tuple(diff_ids), links=links or {})


# ---- chain IDs -----------------------------------------------------------------------


def test_chain_ids_follow_the_oci_definition():
    chain1 = D1
    chain2 = "sha256:" + hashlib.sha256(f"{chain1} {D2}".encode()).hexdigest()
    chain3 = "sha256:" + hashlib.sha256(f"{chain2} {D3}".encode()).hexdigest()

    assert chain_ids([D1, D2, D3]) == [chain1, chain2, chain3]


def test_chain_ids_of_no_layers_is_empty():
    assert chain_ids([]) == []


def test_the_same_diff_id_at_another_depth_has_another_chain_id():
    chains = chain_ids([D1, D2, D1])

    assert len(set(chains)) == 3


def test_held_chain_ids_is_the_union_over_images_sharing_a_base():
    base = [D1, D2]
    app = [D1, D2, D3]
    other = [D4]

    held = held_chain_ids([base, app, other])

    assert held == set(chain_ids(app)) | {D4}  # the base's chains are app's first two
    assert held_chain_ids([]) == set()


# ---- held_prefix ---------------------------------------------------------------------


def test_nothing_is_skipped_when_the_base_layer_is_not_held():
    held = held_chain_ids([[D2, D3]])  # the same diff IDs on another base

    assert held_prefix(saved([D1, D2, D3]).diff_ids, held) == 0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_held_prefix_of_k_layers_skips_k(k):
    image = [D1, D2, D3, D4]

    assert held_prefix(saved(image).diff_ids, held_chain_ids([image[:k]])) == k


def test_skipping_stops_at_the_first_gap_even_if_a_later_chain_is_held():
    chains = chain_ids([D1, D2, D3])
    held = {chains[0], chains[2]}  # not the middle one

    assert held_prefix(saved([D1, D2, D3]).diff_ids, held) == 1


def test_every_layer_held_skips_all_of_them():
    image = [D1, D2, D3]

    assert held_prefix(saved(image).diff_ids, held_chain_ids([image, [D4]])) == 3


# ---- omitted_files -------------------------------------------------------------------


def test_omitted_files_are_the_first_skip_layer_paths():
    image = saved([D1, D2, D3])

    assert omitted_files(image, 0) == set()
    assert omitted_files(image, 2) == {"l1/layer.tar", "l2/layer.tar"}
    assert omitted_files(image, 3) == {"l1/layer.tar", "l2/layer.tar", "l3/layer.tar"}


def test_a_file_that_a_kept_member_links_to_is_kept():
    # Layer 3 repeats layer 1, saved as a link to it; layer 3 is sent, so l1's file must be.
    image = saved([D1, D2, D1], links={"l3/layer.tar": "l1/layer.tar"})

    assert omitted_files(image, 2) == {"l2/layer.tar"}


def test_a_link_between_two_omitted_members_keeps_neither():
    image = saved([D1, D1, D2], links={"l2/layer.tar": "l1/layer.tar"})

    assert omitted_files(image, 2) == {"l1/layer.tar", "l2/layer.tar"}


def test_a_path_that_is_also_among_the_sent_layers_is_kept():
    # Identical layers share one file, so its path appears twice in Layers.
    image = saved([D1, D2, D1], layer_paths=("blobs/a", "blobs/b", "blobs/a"))

    assert omitted_files(image, 2) == {"blobs/b"}
    assert omitted_files(image, 3) == {"blobs/a", "blobs/b"}


# ---- a real `docker save` tarball ----------------------------------------------------


def layer_tar(name: str, size: int) -> bytes:
    """A layer: a tar holding one file. Big enough that leaving it out shows in the size."""
    content = (hashlib.sha256(name.encode()).hexdigest() * (size // 64 + 1)).encode()[:size]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(content), 1_600_000_000
        tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def diff_id(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_tarball(path: Path, folders: list[str], layers: dict[str, bytes | str]) -> list[str]:
    """Write a save tarball at `path`; `layers` maps a folder to its layer.tar bytes, or to
    the symlink target of a duplicate. Returns the diff IDs in layer order."""
    blobs = {f: data for f, data in layers.items() if isinstance(data, bytes)}
    diff_ids = []
    for folder in folders:
        data = layers[folder]
        diff_ids.append(diff_id(data if isinstance(data, bytes) else _target_bytes(data, blobs)))
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    tags = [content_tag("sha256:" + hashlib.sha256(config).hexdigest())]  # saved by its tag
    manifest = [
        {"Config": config_name, "RepoTags": tags, "Layers": [f"{f}/layer.tar" for f in folders]}
    ]

    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for folder in folders:
            add_dir(tar, folder)
            add_file(tar, f"{folder}/VERSION", b"1.0")
            add_file(tar, f"{folder}/json", json.dumps({"id": folder}).encode())
            data = layers[folder]
            if isinstance(data, bytes):
                add_file(tar, f"{folder}/layer.tar", data)
            else:
                link = tarfile.TarInfo(f"{folder}/layer.tar")
                link.type, link.linkname, link.mtime = tarfile.SYMTYPE, data, 1_600_000_000
                tar.addfile(link)
        add_file(tar, config_name, config)
        add_file(tar, "manifest.json", json.dumps(manifest).encode())
    return diff_ids


def _target_bytes(linkname: str, blobs: dict[str, bytes]) -> bytes:
    return blobs[linkname.removeprefix("../").split("/")[0]]


def add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_600_000_000
    tar.addfile(info)


def add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
    tar.addfile(info, io.BytesIO(data))


# Extraction filters (PEP 706) exist from 3.11.4; Debian's 3.11.2 in the test image may
# lack them, and 3.12+ warns when none is given.
EXTRACT = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}

ID1, ID2, ID3 = (hashlib.sha256(f"v1 id {n}".encode()).hexdigest() for n in (1, 2, 3))


@pytest.fixture
def image_tar(tmp_path: Path) -> Path:
    """Three layers; the third has the first one's content and is saved as a symlink."""
    path = tmp_path / "image.tar"
    build_tarball(
        path,
        [ID1, ID2, ID3],
        {
            ID1: layer_tar("base.txt", 40_000),
            ID2: layer_tar("app.txt", 40_000),
            ID3: f"../{ID1}/layer.tar",
        },
    )
    return path


def members(path: Path) -> dict[str, tuple]:
    """Each member's name → (type, linkname, mode, mtime, bytes) as tar extraction sees it."""
    with tarfile.open(path) as tar:
        out = {}
        for m in tar.getmembers():
            data = tar.extractfile(m).read() if m.isfile() else None
            out[m.name] = (m.type, m.linkname, m.mode, m.mtime, data)
    return out


def test_read_saved_gives_layer_paths_diff_ids_and_resolved_links(image_tar: Path):
    image = read_saved(image_tar)

    base, app = layer_tar("base.txt", 40_000), layer_tar("app.txt", 40_000)
    assert image.layer_paths == (f"{ID1}/layer.tar", f"{ID2}/layer.tar", f"{ID3}/layer.tar")
    assert image.diff_ids == (diff_id(base), diff_id(app), diff_id(base))
    assert image.links == {f"{ID3}/layer.tar": f"{ID1}/layer.tar"}


def test_write_thin_leaves_out_exactly_the_held_layers_and_copies_the_rest(
    image_tar: Path, tmp_path: Path
):
    image = read_saved(image_tar)
    held = held_chain_ids([image.diff_ids[:2]])  # the worker has the base and app layers
    skip = held_prefix(image.diff_ids, held)
    omit = omitted_files(image, skip)
    thin = tmp_path / "thin.tar"

    write_thin(image_tar, omit, thin)

    assert skip == 2
    # Layer 3 links to layer 1's file and is sent, so only layer 2's file can go.
    assert omit == {f"{ID2}/layer.tar"}
    full, kept = members(image_tar), members(thin)
    assert set(full) - set(kept) == omit
    assert kept == {name: entry for name, entry in full.items() if name not in omit}
    assert thin.stat().st_size < image_tar.stat().st_size - 40_000
    assert read_saved(thin) == image  # manifest and config are untouched


def test_the_thin_tarball_extracts_with_the_duplicate_layer_readable(
    image_tar: Path, tmp_path: Path
):
    thin, out = tmp_path / "thin.tar", tmp_path / "out"
    write_thin(image_tar, {f"{ID2}/layer.tar"}, thin)

    with tarfile.open(thin) as tar:
        tar.extractall(out, **EXTRACT)

    assert not (out / ID2 / "layer.tar").exists()
    assert (out / ID2 / "json").read_text() == json.dumps({"id": ID2})
    assert (out / ID3 / "layer.tar").is_symlink()
    assert (out / ID3 / "layer.tar").read_bytes() == layer_tar("base.txt", 40_000)


def test_write_thin_with_nothing_to_omit_copies_every_member(image_tar: Path, tmp_path: Path):
    thin = tmp_path / "thin.tar"

    write_thin(image_tar, set(), thin)

    assert members(thin) == members(image_tar)


# ---- link resolution (layers._resolve, through read_saved) ---------------------------


def tarball_with_links(path: Path, links: dict[str, str]) -> None:
    """A one-layer save tarball plus extra symlink members."""
    build_tarball(path, [ID1], {ID1: layer_tar("base.txt", 100)})
    with tarfile.open(path, "a") as tar:
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)


@pytest.mark.parametrize(
    "name, linkname",
    [
        ("b/layer.tar", f"../{ID1}/layer.tar"),
        ("a/b/layer.tar", f"../../{ID1}/layer.tar"),
        ("a/b/layer.tar", f"./../../{ID1}/./layer.tar"),
        ("a/b/layer.tar", f"../c/../../{ID1}//layer.tar"),
        ("b/layer.tar", f"../../../{ID1}/layer.tar"),  # ".." above the root stays at the root
        ("b/layer.tar", f"/{ID1}/layer.tar"),  # absolute: from the archive's root
    ],
)
def test_relative_links_resolve_against_the_members_folder(tmp_path: Path, name, linkname):
    path = tmp_path / "image.tar"
    tarball_with_links(path, {name: linkname})

    assert read_saved(path).links == {name: f"{ID1}/layer.tar"}


def test_a_hard_link_resolves_to_the_archive_path_it_names(tmp_path: Path):
    path = tmp_path / "image.tar"
    build_tarball(path, [ID1], {ID1: layer_tar("base.txt", 100)})
    with tarfile.open(path, "a") as tar:
        info = tarfile.TarInfo(f"{ID3}/layer.tar")
        info.type, info.linkname = tarfile.LNKTYPE, f"{ID1}/layer.tar"
        tar.addfile(info)

    assert read_saved(path).links == {f"{ID3}/layer.tar": f"{ID1}/layer.tar"}


# ---- is_complete: a whole tarball of the image, before it is reused -------------------


def image_id_of(path: Path) -> str:
    with tarfile.open(path) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
    return "sha256:" + entry["Config"].removesuffix(".json")


def test_a_whole_save_is_complete_and_a_thin_one_only_with_its_omissions(
    image_tar: Path, tmp_path: Path
):
    image_id, omit = image_id_of(image_tar), {f"{ID2}/layer.tar"}
    thin = tmp_path / "thin.tar"
    write_thin(image_tar, omit, thin)

    assert is_complete(image_tar, image_id)
    assert is_complete(thin, image_id, omit)
    assert not is_complete(thin, image_id)  # a full load needs the layer it lacks
    assert not is_complete(thin, image_id, {f"{ID1}/layer.tar"})  # lacks one it must carry


def test_a_tarball_of_another_image_is_not_complete(image_tar: Path):
    assert not is_complete(image_tar, "sha256:" + "0" * 64)


def _data_span(path: Path, name: str) -> tuple[int, int]:
    """Where a member's data starts and ends in the archive."""
    with tarfile.open(path) as tar:
        member = tar.getmember(name)
        return member.offset_data, member.offset_data + member.size


def _cut(path: Path, at: int, dest: Path) -> Path:
    dest.write_bytes(path.read_bytes()[:at])
    return dest


@pytest.mark.parametrize("where", ["manifest.json", f"{ID2}/layer.tar", f"{ID1}/json"])
def test_a_tarball_cut_off_inside_a_member_is_not_complete(
    image_tar: Path, tmp_path: Path, where: str
):
    start, end = _data_span(image_tar, where)

    cut = _cut(image_tar, (start + end) // 2, tmp_path / "cut.tar")

    assert not is_complete(cut, image_id_of(image_tar))


def test_a_tarball_cut_inside_its_last_members_data_is_not_complete(tmp_path: Path):
    # Here manifest.json comes first, so only the last member's own length tells.
    path = tmp_path / "image.tar"
    build_tarball(path, [ID1], {ID1: layer_tar("base.txt", 40_000)})
    with tarfile.open(path) as tar:
        config = next(m.name for m in tar if m.name.endswith(".json") and "/" not in m.name)
    reordered = tmp_path / "reordered.tar"
    with tarfile.open(reordered, "w", format=tarfile.GNU_FORMAT) as tar:
        for name in ("manifest.json", config, f"{ID1}/layer.tar"):
            add_file(tar, name, _member(path, name))
    _, end = _data_span(reordered, f"{ID1}/layer.tar")

    cut = _cut(reordered, end - 1000, tmp_path / "cut.tar")

    assert is_complete(reordered, image_id_of(path))
    assert not is_complete(cut, image_id_of(path))


def _member(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        return tar.extractfile(name).read()


def test_a_missing_or_empty_file_is_not_complete(tmp_path: Path):
    (tmp_path / "empty.tar").write_bytes(b"")

    assert not is_complete(tmp_path / "missing.tar", "sha256:" + "0" * 64)
    assert not is_complete(tmp_path / "empty.tar", "sha256:" + "0" * 64)


# ---- write_thin_to and thin_size -----------------------------------------------------


def test_write_thin_to_an_open_file_writes_what_write_thin_writes(image_tar: Path, tmp_path: Path):
    omit = {f"{ID2}/layer.tar"}
    write_thin(image_tar, omit, tmp_path / "by-path.tar")
    with open(tmp_path / "by-file.tar", "wb") as out:
        write_thin_to(image_tar, omit, out)

    assert (tmp_path / "by-file.tar").read_bytes() == (tmp_path / "by-path.tar").read_bytes()


def test_thin_size_is_about_the_size_of_the_thin_tarball(image_tar: Path, tmp_path: Path):
    omit = {f"{ID2}/layer.tar"}
    write_thin(image_tar, omit, tmp_path / "thin.tar")

    actual = (tmp_path / "thin.tar").stat().st_size
    assert abs(thin_size(image_tar, omit) - actual) <= 10240  # within one tar record
    assert thin_size(image_tar, set()) == image_tar.stat().st_size


# ---- a thin tarball cut from the save stream ----------------------------------------------


def _chunks(path: Path, size: int):
    data = path.read_bytes()
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1, 700, 1 << 20])
def test_a_thin_tarball_from_the_stream_equals_the_one_cut_from_the_full_tarball(
    tmp_path: Path, chunk: int
):
    path = tmp_path / "two.tar"
    base, app = layer_tar("base.txt", 40_000), layer_tar("app.txt", 40_000)
    build_tarball(path, [ID1, ID2], {ID1: base, ID2: app})
    image = read_saved(path)
    from_full = tmp_path / "from-full.tar"
    write_thin(path, omitted_files(image, 1), from_full)

    streamed = tmp_path / "streamed.tar"
    with open(streamed, "wb") as out:
        left_out = write_thin_from_stream(_chunks(path, chunk), {image.diff_ids[0]}, out)

    assert left_out == {f"{ID1}/layer.tar"}
    assert members(streamed) == members(from_full)
    with tarfile.open(path) as tar:
        config = tar.extractfile(json.load(tar.extractfile("manifest.json"))[0]["Config"])
        image_id = "sha256:" + hashlib.sha256(config.read()).hexdigest()
    assert is_complete(streamed, image_id, left_out)


def test_a_stream_whose_kept_link_points_at_a_left_out_layer_is_refused(
    image_tar: Path, tmp_path: Path
):
    image = read_saved(image_tar)  # the third layer links to the first
    with open(tmp_path / "thin.tar", "wb") as out, pytest.raises(NotStreamable):
        write_thin_from_stream(_chunks(image_tar, 4096), {image.diff_ids[0]}, out)


def test_nothing_to_leave_out_gives_the_whole_image(image_tar: Path, tmp_path: Path):
    with open(tmp_path / "copy.tar", "wb") as out:
        assert write_thin_from_stream(_chunks(image_tar, 4096), set(), out) == set()
    assert members(tmp_path / "copy.tar") == members(image_tar)
