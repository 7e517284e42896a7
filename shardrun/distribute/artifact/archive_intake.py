"""An archive made elsewhere, decompressed into a file with every cost bounded.

A compressed file may inflate a thousandfold (a few MB of zstd can be 60 GiB of zeros),
so the bytes are counted as they are written, and the tar inside is walked as it streams
by: each header declares its member's size before the data comes, so a member that would
pass the cap is refused at its header, before a byte of it is written; a tar ends with a
zero block, and what follows it is bounded too. tarfile reads a PAX or GNU long-name
header's body into memory, so no more than `_HEADERS` may pass between one member's data
and the next member. Names and link targets must stay inside the archive.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer as Buffer

from shardrun.distribute.artifact.layers import chunk_reader
from shardrun.state.foreign import Refused, relative_name

_CHUNK = 1 << 20
_HEADERS = 1 << 20  # a PAX or long-name header: a few hundred bytes in any real archive
_TRAILING = 1 << 20  # after the end: a writer's padding, 10 KB at most in practice
MAX_MEMBERS = 10_000  # a docker save has about 3 a layer, and at most 128 layers


class Overflow(Refused):
    """The archive would unpack to more than the cap it was given: to `reached` bytes
    at least (what a member's header declares, or one past the cap)."""

    def __init__(self, message: str, reached: int) -> None:
        super().__init__(message)
        self.reached = reached


def copy_archive(blocks: Iterable[bytes], out: BinaryIO, cap: int) -> list[tarfile.TarInfo]:
    """Write the tar that `blocks` decompress to into `out`, refusing it (Overflow) once it
    would pass `cap` bytes, or (Refused) a member that is not a plain file, folder or link
    inside the archive; the members, checked. tarfile.TarError or a decoder's error if
    it is cut off or damaged."""
    tee = _Tee(blocks, out, cap)
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    with tarfile.open(fileobj=tee, mode="r|", bufsize=_CHUNK) as tar:
        for member in tar:
            _check(member, seen)
            if len(members) == MAX_MEMBERS:
                raise Refused(f"more than {MAX_MEMBERS} members")
            end = member.offset_data + (_block(member.size) if member.isreg() else 0)
            if end > cap:
                raise Overflow(f"its member {_short(member.name)} takes it to {end} bytes", end)
            tee.allow(end + _HEADERS, f"over 1 MiB of headers after {_short(member.name)}")
            members.append(member)
        end_of_archive = tar.offset
    tee.allow(end_of_archive + _TRAILING, "over 1 MiB follows the end of its tar archive")
    tee.drain()
    return members


def _check(member: tarfile.TarInfo, seen: set[str]) -> None:
    relative_name(member.name, limit=255)
    if member.name in seen:
        raise Refused(f"{_short(member.name)} is in the archive twice")
    seen.add(member.name)
    if member.issparse() or not (
        member.isreg() or member.isdir() or member.issym() or member.islnk()
    ):
        raise Refused(f"{_short(member.name)} is neither a file, a folder nor a link")
    if member.islnk():
        relative_name(member.linkname)  # named from the archive's root
    elif member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise Refused(
                f"{_short(member.name)} links to {_short(member.linkname)!r}, outside the archive"
            )


def _short(name: str) -> str:
    """A member's name for a one-line message: its end, where a layer's file name is."""
    return name if len(name) <= 40 else "..." + name[-37:]


def _block(size: int) -> int:
    return -(-size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE


class _Tee(io.RawIOBase):
    """The decompressed blocks as a readable file for tarfile, each byte written to `out`
    as it is read; no read goes past the allowance (Overflow once that is `cap`, Refused
    below it: a header or a tail longer than any real archive's)."""

    def __init__(self, blocks: Iterable[bytes], out: BinaryIO, cap: int) -> None:
        self._src = chunk_reader(blocks)
        self._out, self._cap = out, cap
        self._read = 0
        self.allow(_HEADERS, "over 1 MiB of headers before its first member")

    def allow(self, upto: int, beyond: str) -> None:
        """Let reads go on up to about `upto` (tarfile reads a chunk ahead); past that,
        refuse the archive with `beyond`."""
        self._upto, self._beyond = min(upto + _CHUNK, self._cap), beyond

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Buffer) -> int:
        room = self._upto - self._read
        if room <= 0:
            if not self._src.readinto(bytearray(1)):
                return 0  # the end, just there
            if self._upto >= self._cap:
                raise Overflow(f"it unpacks to more than {self._cap} bytes", self._cap + 1)
            raise Refused(self._beyond)
        view = memoryview(buffer)[:room]
        size = self._src.readinto(view) or 0
        self._out.write(view[:size])
        self._read += size
        return size

    def drain(self) -> None:
        """Read the rest, into `out`, within the allowance."""
        buffer = bytearray(_CHUNK)
        while self.readinto(buffer):
            pass
