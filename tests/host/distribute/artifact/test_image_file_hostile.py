"""`run --image FILE` against files an attacker made: every one is imported, or refused
with one line and exit 2 or 4, in bounded time and memory, reading nothing outside the
archive and leaving nothing in the cache; and `build --output` refuses a place it cannot
write to before the build, and removes what a killed writer left beside its output.

Host-only (no engine): the archives are made here with tarfile, in the shape `docker
save` writes (tests/unit/distribute/test_layers.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shardrun.distribute.artifact import image_file
from shardrun.distribute.compress import codecs
from shardrun.model.errors import ConfigError, DiskFull, InfraError
from shardrun.model.image_ref import content_tag
from shardrun.model.transit import CODECS
from tests.host.test_cli_errors import shardrun
from tests.unit.distribute.artifact.test_layers import layer_tar

SECRET = b"planted-outside-the-archive-7f3a"


@dataclass(frozen=True)
class Member:
    name: str
    data: bytes | None = None  # None: no data (a folder, a link)
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    size: int | None = None  # declared, when it is not len(data)


def image_members(layer_count: int = 2) -> list[Member]:
    """A docker save of a `layer_count`-layer image under its content tag."""
    layers = [layer_tar(f"file{n}", 3000 + n) for n in range(layer_count)]
    diff_ids = ["sha256:" + hashlib.sha256(data).hexdigest() for data in layers]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    ).encode()
    digest = hashlib.sha256(config).hexdigest()
    manifest = [
        {
            "Config": f"{digest}.json",
            "RepoTags": [content_tag(f"sha256:{digest}")],
            "Layers": [f"l{n}/layer.tar" for n in range(layer_count)],
        }
    ]
    members = []
    for n, data in enumerate(layers):
        members += [Member(f"l{n}", type=tarfile.DIRTYPE), Member(f"l{n}/layer.tar", data)]
    return [
        *members,
        Member(f"{digest}.json", config),
        Member("manifest.json", json.dumps(manifest).encode()),
    ]


def pack(members: list[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for m in members:
            info = tarfile.TarInfo(m.name)
            info.type, info.linkname, info.mtime = m.type, m.linkname, 1_600_000_000
            if m.data is None:
                tar.addfile(info)
                continue
            info.size = len(m.data) if m.size is None else m.size
            tar.addfile(info, io.BytesIO(m.data.ljust(info.size, b"\0")))
    return buf.getvalue()


def with_manifest(members: list[Member], value: object) -> list[Member]:
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    return [replace(m, data=data) if m.name == "manifest.json" else m for m in members]


def with_config(members: list[Member], data: bytes) -> list[Member]:
    return [
        replace(m, data=data) if m.name.endswith(".json") and m.name != "manifest.json" else m
        for m in members
    ]


def entry(members: list[Member]) -> dict:
    """The image's manifest.json entry."""
    manifest = next(m.data for m in members if m.name == "manifest.json")
    return json.loads(manifest or b"")[0]


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ---- what an attacker may send ----------------------------------------------------------

HOSTILE_NAMES = [
    "../../secret.txt",
    "/etc/passwd",
    "l0/../../secret.txt",
    "",
    "a\x00b",
    "a\nb",
    "l0",
    "nosuch/layer.tar",
    "x" * 2000,
    "./manifest.json",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Config", "Layers", "RepoTags", "rootfs", "diff_ids"])
            | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=10,
)


@st.composite
def hostile_files(draw) -> tuple[bytes, str]:
    """An image file's content, mutated one way or another, and how (for the statistics)."""
    members = image_members()
    prefix = b""
    how = draw(
        st.sampled_from(
            [
                "valid",
                "truncated",
                "flipped",
                "headers",
                "manifest",
                "entry",
                "config",
                "names",
                "links",
                "oversized",
                "noise",
                "deep",
            ]
        )
    )
    if how == "manifest":
        members = with_manifest(members, draw(json_values | st.binary(max_size=50)))
    elif how == "entry":
        key = draw(st.sampled_from(["Config", "Layers", "RepoTags"]))
        value = draw(
            json_values
            | st.sampled_from(HOSTILE_NAMES)
            | st.lists(st.sampled_from(HOSTILE_NAMES), min_size=1, max_size=3)
        )
        members = with_manifest(members, [{**entry(members), key: value}])
    elif how == "config":
        members = with_config(
            members,
            draw(
                st.sampled_from(
                    [
                        b"not json",
                        b"{}",
                        b"[]",
                        b'{"rootfs": {"diff_ids": ["sha256:abc"]}}',
                        b'{"rootfs": {"diff_ids": []}}',
                        b'{"rootfs": {"diff_ids": [1]}}',
                        deep(5000),
                        b'{"rootfs": {"diff_ids": [NaN]}}',
                    ]
                )
                | json_values.map(lambda v: json.dumps(v).encode())
            ),
        )
    elif how == "names":  # a member whose own name leaves the archive
        name = draw(st.sampled_from([*HOSTILE_NAMES[:4], "l0/layer.tar", "manifest.json"]))
        members = [Member(name, b"data"), *members]
    elif how == "links":  # the layer a manifest names is a link out, or to a link
        target = draw(
            st.sampled_from(
                [
                    "../../secret.txt",
                    "/etc/passwd",
                    "../l1/layer.tar",
                    "layer.tar",
                    "../../../etc",
                ]
            )
        )
        kind = draw(st.sampled_from([tarfile.SYMTYPE, tarfile.LNKTYPE]))
        members = [m for m in members if m.name != "l0/layer.tar"]
        members.insert(1, Member("l0/layer.tar", type=kind, linkname=target))
        if draw(st.booleans()):  # a loop: l1's layer links back to l0's
            members = [
                replace(m, data=None, type=tarfile.SYMTYPE, linkname="../l0/layer.tar")
                if m.name == "l1/layer.tar"
                else m
                for m in members
            ]
    elif how == "oversized":
        shape = draw(
            st.sampled_from(["member", "many", "manifest", "pax", "declared", "long-names"])
        )
        if shape == "member":  # past the cap the test sets (32 MiB)
            members.insert(0, Member("big", b"", size=48 << 20))
        elif shape == "declared":  # a size no data follows: only its header is written
            big = tarfile.TarInfo("big")
            big.size = 1 << 40
            prefix = big.tobuf(tarfile.GNU_FORMAT)
        elif shape == "many":
            members = [Member(f"m{n}", b"") for n in range(10_001)] + members
        elif shape == "manifest":
            members = with_manifest(members, [{**entry(members), "x": "y" * (5 << 20)}])
        elif shape == "pax":  # a name in a PAX header tarfile would read whole
            members.insert(0, Member("n" * (2 << 20), b"x"))
        else:
            members = with_manifest(members, [{**entry(members), "Layers": ["a" * 100_000] * 3}])
    elif how == "deep":
        members = with_manifest(members, deep(draw(st.integers(33, 200_000))))
    data = prefix + pack(members, draw(st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])))
    if how == "truncated":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how in ("flipped", "headers"):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # where each header starts
            headers = [m.offset for m in tar.getmembers()]
        for _ in range(draw(st.integers(1, 8))):
            if how == "flipped":
                at = draw(st.integers(0, len(data) - 1))
            else:  # in a header: a size, a type, a checksum, a name
                at = draw(st.sampled_from(headers)) + draw(st.integers(0, 511))
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    codec = draw(st.sampled_from(CODECS))
    if how == "noise":
        magic = {"gzip": b"\x1f\x8b", "zstd": b"\x28\xb5\x2f\xfd", "none": b""}[codec]
        return magic + draw(st.binary(min_size=1, max_size=4000)), how
    compressed = codecs.compressed_bytes(codec, data)
    if how == "truncated" and codec != "none" and draw(st.booleans()):
        compressed = compressed[: draw(st.integers(1, len(compressed) - 1))]
    return compressed, how


def _files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(hostile_files())
def test_any_image_file_is_imported_or_refused_with_one_line_and_nothing_left(case):
    content, how = case
    event(how)
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(image_file, "CEILING", 32 << 20):
        root = Path(tmp)
        (root / "secret.txt").write_bytes(SECRET)
        (root / "job").mkdir()
        path = root / "job" / "image.tar.zst"
        path.write_bytes(content)
        cache = root / "job" / "cache"
        before = _files_under(root)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        try:
            image_id, tarball, _ = image_file.import_into_cache(path, cache)
        except (ConfigError, InfraError) as exc:
            event(f"{how}: exit {exc.exit_code}")
            assert how != "valid", str(exc)
            assert "\n" not in str(exc) and str(path) in str(exc)
            assert not cache.exists() or list(cache.iterdir()) == []  # no half file, no lock
        else:
            event(f"{how}: imported")
            assert [p.name for p in cache.iterdir()] == [tarball.name]
            assert SECRET not in tarball.read_bytes()
            with tarfile.open(tarball) as tar:  # what a worker gets: names inside the archive
                assert all(
                    ".." not in m.name.split("/") and not m.name.startswith("/")
                    for m in tar.getmembers()
                )
            assert image_id.startswith("sha256:")
        assert time.monotonic() - started < 10
        # ru_maxrss is in KiB: a bomb or a huge header held in memory would show here.
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 300_000
        after = _files_under(root)
        assert {k: v for k, v in after.items() if not k.startswith("job/cache/")} == before


# ---- the cases of the issue, each named --------------------------------------------------


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "job").mkdir()
    return tmp_path / "job"


def _refused(path: Path, cache: Path, error=ConfigError) -> str:
    with pytest.raises(error) as caught:
        image_file.import_into_cache(path, cache)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert not cache.exists() or list(cache.iterdir()) == []
    return message


def test_a_valid_image_file_is_imported_in_each_codec(job: Path):
    data = pack(image_members(3))
    ids = set()
    for codec, name in (("none", "i.tar"), ("gzip", "i.tar.gz"), ("zstd", "i.tar.zst")):
        (job / name).write_bytes(codecs.compressed_bytes(codec, data))
        image_id, tarball, reused = image_file.import_into_cache(job / name, job / "cache")
        assert tarball.read_bytes() == data and reused == (codec != "none")
        ids.add(image_id)
    assert len(ids) == 1


@pytest.mark.parametrize(
    "members, words",
    [
        (with_manifest(image_members(), {}), "manifest.json does not list exactly one image"),
        (with_manifest(image_members(), [1]), "manifest.json does not list exactly one image"),
        (with_config(image_members(), b"not json"), "the image config: not JSON"),
        ([m for m in image_members() if m.name != "manifest.json"], "manifest.json"),
        (with_manifest(image_members(), deep(100_000)), "manifest.json: nested deeper than"),
        ([Member("../../secret.txt", SECRET), *image_members()], "not a relative path"),
    ],
    ids=["manifest-{}", "manifest-[1]", "config-not-json", "no-manifest", "deep", "member-out"],
)
def test_an_archive_of_the_wrong_shape_is_one_line_exit_2(job: Path, members, words):
    path = job / "image.tar.zst"
    path.write_bytes(codecs.compressed_bytes("zstd", pack(members)))

    assert words in _refused(path, job / "cache")


@pytest.mark.parametrize("layer", ["../../secret.txt", "/etc/passwd", "l0/../../../secret.txt"])
def test_a_manifest_naming_a_layer_outside_the_archive_is_refused_before_any_read(
    job: Path, layer: str
):
    members = image_members()
    members = with_manifest(members, [{**entry(members), "Layers": [layer, "l1/layer.tar"]}])
    path = job / "image.tar"
    path.write_bytes(pack(members))
    real = tarfile.TarFile.extractfile

    with mock.patch.object(tarfile.TarFile, "extractfile", autospec=True, side_effect=real) as read:
        assert "is not a relative path inside its folder" in _refused(path, job / "cache")
    # Refused on the name: nothing was read but manifest.json, not even the config.
    assert [getattr(c.args[1], "name", c.args[1]) for c in read.call_args_list] == ["manifest.json"]


@pytest.mark.parametrize("target", ["../../secret.txt", "/etc/passwd"])
def test_a_layer_that_links_out_of_the_archive_is_refused(job: Path, target: str):
    members = [
        Member("l0/layer.tar", type=tarfile.SYMTYPE, linkname=target)
        if m.name == "l0/layer.tar"
        else m
        for m in image_members()
    ]
    path = job / "image.tar"
    path.write_bytes(pack(members))

    assert "outside the archive" in _refused(path, job / "cache")


def test_links_in_a_loop_are_refused_not_followed_forever(job: Path):
    members = image_members()
    config = next(m for m in members if m.name.endswith(".json") and m.name != "manifest.json")
    members = [
        Member(config.name, type=tarfile.SYMTYPE, linkname="loop") if m is config else m
        for m in members
    ]
    members.insert(0, Member("loop", type=tarfile.SYMTYPE, linkname=config.name))
    path = job / "image.tar"
    path.write_bytes(pack(members))

    assert "not a docker image archive" in _refused(path, job / "cache")


def test_gzip_magic_followed_by_noise_is_damaged_exit_4(job: Path):
    path = job / "image.tar.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(5000))

    assert "is truncated or damaged" in _refused(path, job / "cache", InfraError)


@pytest.mark.parametrize("kind", ["fifo", "folder", "device", "link-to-device"])
def test_an_image_file_that_is_no_regular_file_is_refused_at_once(job: Path, kind: str):
    path = job / "image.tar.zst"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path.symlink_to("/dev/zero")
    started = time.monotonic()

    message = _refused(path, job / "cache")

    assert time.monotonic() - started < 2
    assert "not a regular file" in message


def test_a_link_to_a_regular_image_file_given_by_the_user_is_followed(job: Path):
    real = job / "real.tar.zst"
    real.write_bytes(codecs.compressed_bytes("zstd", pack(image_members())))
    (job / "image.tar.zst").symlink_to(real)

    assert image_file.import_into_cache(job / "image.tar.zst", job / "cache")[0]


def _zero_bomb(path: Path, gib: int) -> None:
    """A zstd file of `gib` GiB of zeros: one compressed 128 MiB frame, repeated."""
    import zstandard

    frame = zstandard.ZstdCompressor().compress(bytes(128 << 20))
    path.write_bytes(frame * (gib * 8))


def test_a_60_gib_zero_bomb_stops_within_a_second_at_the_real_cap(job: Path):
    path = job / "bomb.tar.zst"
    _zero_bomb(path, 60)
    started = time.monotonic()

    message = _refused(path, job / "cache")

    assert time.monotonic() - started < 1
    assert "follows the end of its tar archive" in message


def test_an_archive_past_the_ceiling_stops_at_it(job: Path):
    members = [Member("big", b"", size=40 << 20), *image_members()]
    path = job / "image.tar.zst"
    path.write_bytes(codecs.compressed_bytes("zstd", pack(members)))

    with mock.patch.object(image_file, "CEILING", 32 << 20):
        assert "unpacks to more than" in _refused(path, job / "cache")


def test_an_archive_past_the_free_disk_is_a_full_disk_exit_4(job: Path):
    path = job / "image.tar.zst"
    path.write_bytes(codecs.compressed_bytes("zstd", pack(image_members())))
    usage = os.statvfs(job)
    free = image_file.MARGIN + 4096  # room for less than the archive

    disk = SimpleNamespace(total=usage.f_blocks * usage.f_frsize, used=0, free=free)
    with mock.patch("shutil.disk_usage", return_value=disk):
        message = _refused(path, job / "cache", DiskFull)
    assert "no room for the image" in message and "free some space" in message


def test_a_member_declaring_more_than_the_free_disk_is_a_full_disk_at_its_header(job: Path):
    big = tarfile.TarInfo("l0/layer.tar")
    big.size = 60 << 30  # under the ceiling, over the disk; no data follows its header
    path = job / "image.tar.zst"
    path.write_bytes(codecs.compressed_bytes("zstd", big.tobuf(tarfile.GNU_FORMAT)))
    disk = SimpleNamespace(total=1 << 40, used=0, free=image_file.MARGIN + (10 << 30))
    started = time.monotonic()

    with mock.patch("shutil.disk_usage", return_value=disk):
        message = _refused(path, job / "cache", DiskFull)

    assert "10737 MB free there" in message and time.monotonic() - started < 1


# ---- build --output ---------------------------------------------------------------------


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text('[[shard]]\nname = "a"\ncommand = "true"\n')
    return tmp_path


@pytest.mark.parametrize(
    "output, words",
    [
        ("/proc/x.tar.zst", "no file can be written there"),
        ("/proc/x/image.tar.zst", "no file can be written there"),
        ("in-the-way/sub/image.tar.zst", "a file is in the way of its folder"),
        ("folder.tar.zst", "is a folder; give a file name"),
    ],
    ids=["proc", "proc-folder", "file-in-the-way", "onto-a-folder"],
)
def test_build_output_where_no_file_can_go_is_one_line_exit_2_before_the_build(
    proj: Path, output: str, words: str
):
    (proj / "in-the-way").write_text("a file\n")
    (proj / "folder.tar.zst").mkdir()

    # No engine (DOCKER_HOST leads nowhere): the refusal comes before the build needs one.
    done = shardrun(proj, "build", "--plain", "--output", output)

    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no process has it now (until the kernel reuses it)


def test_the_next_build_output_removes_a_killed_writers_temp_files_beside_it(proj: Path):
    out = proj / "dist"
    out.mkdir()
    dead = _dead_pid()
    stale = [
        out / f".image.tar.zst.{dead}.0123abcd.tmp",
        out / f".image.plan.json.{dead}.89abcdef.tmp",
    ]
    live = out / f".image.tar.zst.{os.getpid()}.0123abcd.tmp"  # a writer still at it
    other = out / f".other.tar.zst.{dead}.0123abcd.tmp"  # another output's: not ours to judge
    for path in (*stale, live, other):
        path.write_bytes(b"half an image")

    done = shardrun(proj, "build", "--plain", "--output", "dist/image.tar.zst", "--partitions", "2")

    assert done.returncode == 4, done.stderr  # no engine: only the build itself failed
    assert not any(p.exists() for p in stale)
    assert live.exists() and other.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, other.name])
