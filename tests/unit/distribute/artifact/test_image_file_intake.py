"""archive_intake: an archive from elsewhere, decompressed with every cost bounded.

In memory: the blocks are what a decompressor yields, the output a BytesIO.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from shardrun.distribute.artifact.archive_intake import MAX_MEMBERS, Overflow, copy_archive
from shardrun.state.foreign import Refused

MiB = 1 << 20


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None], fmt=tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    """A member without data: a link by default, or of another `kind`."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def chunks(data: bytes, size: int = MiB):
    """As a decompressor yields them, counting what was asked for."""
    for at in range(0, len(data), size):
        chunks.pulled += min(size, len(data) - at)
        yield data[at : at + size]


def zeros(total: int):
    """`total` bytes of zeros, a MiB at a time, never held whole: a bomb's content."""
    block = bytes(MiB)
    for _ in range(total // MiB):
        chunks.pulled += MiB
        yield block


def _after(first: bytes, rest):
    yield first
    yield from rest


@pytest.fixture(autouse=True)
def _count():
    chunks.pulled = 0


def test_a_whole_archive_is_copied_byte_for_byte_with_its_members():
    data = tar_of(
        file("a/layer.tar", b"L" * 5000),
        link("b/layer.tar", "../a/layer.tar"),
        file("manifest.json", b"[]"),
    )
    out = io.BytesIO()

    members = copy_archive(chunks(data, 700), out, cap=1 << 30)

    assert out.getvalue() == data
    assert [m.name for m in members] == ["a/layer.tar", "b/layer.tar", "manifest.json"]


def test_a_zero_bomb_stops_after_a_few_mib_whatever_it_would_inflate_to():
    out = io.BytesIO()

    with pytest.raises(Refused, match="follows the end of its tar archive"):
        copy_archive(zeros(60 << 30), out, cap=64 << 30)

    assert chunks.pulled <= 4 * MiB and len(out.getvalue()) <= 3 * MiB


def test_a_member_declaring_more_than_the_cap_is_refused_at_its_header():
    big = tarfile.TarInfo("layer.tar")
    big.size = 60 << 30  # declared; its data never comes
    header = big.tobuf(tarfile.GNU_FORMAT)
    out = io.BytesIO()

    with pytest.raises(Overflow, match="takes it to"):
        copy_archive(iter([header + bytes(MiB)]), out, cap=1 << 30)

    assert len(out.getvalue()) <= 2 * MiB


def test_members_adding_up_past_the_cap_stop_at_the_cap():
    data = tar_of(*(file(f"l{n}", bytes(MiB)) for n in range(12)))
    out = io.BytesIO()

    with pytest.raises(Overflow):
        copy_archive(chunks(data), out, cap=8 * MiB)

    assert len(out.getvalue()) <= 8 * MiB


def test_a_pax_header_larger_than_any_real_one_is_refused_before_it_is_read_whole():
    pax = tarfile.TarInfo("././@PaxHeader")
    pax.type, pax.size = tarfile.XHDTYPE, 1 << 30  # tarfile would read it into memory
    out = io.BytesIO()

    with pytest.raises(Refused, match="headers"):
        copy_archive(_after(pax.tobuf(tarfile.GNU_FORMAT), zeros(1 << 30)), out, cap=1 << 40)

    assert chunks.pulled <= 4 * MiB


def test_a_long_name_header_too_long_is_refused_before_it_is_read_whole():
    longname = tarfile.TarInfo("././@LongLink")
    longname.type, longname.size = tarfile.GNUTYPE_LONGNAME, 1 << 30
    out = io.BytesIO()

    with pytest.raises(Refused, match="headers"):
        copy_archive(_after(longname.tobuf(tarfile.GNU_FORMAT), zeros(1 << 30)), out, cap=1 << 40)

    assert chunks.pulled <= 4 * MiB


@pytest.mark.parametrize(
    "member, words",
    [
        (file("../../etc/passwd"), "not a relative path"),
        (file("/etc/passwd"), "not a relative path"),
        (link("a/layer.tar", "../../etc/passwd"), "outside the archive"),
        (link("layer.tar", "/etc/passwd"), "outside the archive"),
        (link("layer.tar", "../etc/passwd", tarfile.LNKTYPE), "not a relative path"),
        (link("f", "", tarfile.FIFOTYPE), "neither a file"),
        (link("c", "", tarfile.CHRTYPE), "neither a file"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "symlink-absolute", "hardlink-out", "fifo", "device"],
)
def test_a_member_or_link_leaving_the_archive_or_not_a_file_is_refused(member, words):
    with pytest.raises(Refused, match=words):
        copy_archive(iter([tar_of(file("ok"), member)]), io.BytesIO(), cap=1 << 30)


def test_a_member_twice_is_refused():
    with pytest.raises(Refused, match="twice"):
        copy_archive(
            iter([tar_of(file("manifest.json"), file("manifest.json"))]), io.BytesIO(), cap=1 << 30
        )


def test_more_members_than_any_image_has_are_refused():
    # Empty members: a header each, cheap to compress, and a TarInfo each in tarfile's list.
    data = b"".join(
        tarfile.TarInfo(f"m{n}").tobuf(tarfile.GNU_FORMAT) for n in range(MAX_MEMBERS + 1)
    )

    with pytest.raises(Refused, match="more than 10000 members"):
        copy_archive(chunks(data), io.BytesIO(), cap=1 << 30)


def test_a_cut_archive_is_a_tar_error():
    data = tar_of(file("layer.tar", b"L" * 50_000))

    with pytest.raises(tarfile.ReadError):
        copy_archive(iter([data[:20_000]]), io.BytesIO(), cap=1 << 30)
