"""The codecs an image travels or is stored in: zstd (`zstandard`) and gzip (`isal`'s
igzip), both compressing on several threads with the GIL released, so a transfer's
compression neither takes one core alone nor stalls the event loop; and "none".

Docker engines load a gzip archive whatever their store; only the containerd image store
(moby 25 and later) loads a zstd one (moby/moby#46605).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import BinaryIO, Protocol

from shardrun.model.transit import GZIP, NONE, ZSTD

_CHUNK = 1 << 20
# Level 1 of igzip makes about what `gzip -1` does at several times its speed; zstd's level
# 3 is its default, smaller than gzip's and still faster than a 100 Mbit/s link by far.
_GZIP_LEVEL, _ZSTD_LEVEL = 1, 3
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Sink(Protocol):
    def write(self, block: bytes, /) -> object: ...
    def close(self) -> None: ...


class _Plain:
    """No codec: blocks go to the file as they are; closing leaves it open."""

    def __init__(self, out: BinaryIO) -> None:
        self.write = out.write

    def close(self) -> None:
        pass


def compressor(codec: str, out: BinaryIO, threads: int | None = None) -> Sink:
    """A writer that compresses into `out` (left open when it is closed), on `threads`."""
    threads = threads or os.cpu_count() or 1
    if codec == GZIP:
        from isal import igzip_threaded

        # Given a file object, it leaves it open when it closes.
        return igzip_threaded.open(out, "wb", compresslevel=_GZIP_LEVEL, threads=threads)
    if codec == ZSTD:
        import zstandard

        params = zstandard.ZstdCompressor(level=_ZSTD_LEVEL, threads=threads, write_checksum=True)
        return params.stream_writer(out, closefd=False)
    return _Plain(out)


def compressed_bytes(codec: str, data: bytes) -> bytes:
    """`data` compressed whole in this thread (the GIL released), as `compressor` would:
    for the small parts of an archive, where starting threads costs more than it saves."""
    if codec == GZIP:
        from isal import igzip

        return igzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    if codec == ZSTD:
        import zstandard

        return zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_checksum=True).compress(data)
    return data


def blocks_of(fd: int, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of the open file, read by offset (leaving its position to the
    others who read it); OSError if the file ends early."""
    while start < end:
        block = os.pread(fd, min(_CHUNK, end - start), start)
        if not block:
            raise OSError(f"the archive ended {end - start} bytes early")
        start += len(block)
        yield block


def decompressed(src: BinaryIO, codec: str) -> Iterator[bytes]:
    """What `src` decompresses to, in blocks. A cut-off or damaged stream raises one of
    decode_errors()."""
    if codec == GZIP:
        from isal import igzip

        with igzip.IGzipFile(fileobj=src, mode="rb") as g:
            while block := g.read(_CHUNK):
                yield block
        return
    if codec == ZSTD:
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(src, read_across_frames=True)
        while block := reader.read(_CHUNK):
            yield block
        return
    while block := src.read(_CHUNK):
        yield block


def decode_errors() -> tuple[type[Exception], ...]:
    import tarfile
    import zlib

    import zstandard
    from isal import isal_zlib

    # isal's error is not zlib's: igzip raises it for a damaged deflate stream. (Its stub
    # calls it an Exception instance; it is a class.)
    isal_error: type[Exception] = isal_zlib.error  # type: ignore[assignment]
    return (OSError, EOFError, zlib.error, isal_error, tarfile.TarError, zstandard.ZstdError)


def sniff(head: bytes) -> str | None:
    """The codec a file starting with `head` (512 bytes) is in; None if not a tar in any."""
    if head.startswith(_GZIP_MAGIC):
        return GZIP
    if head.startswith(_ZSTD_MAGIC):
        return ZSTD
    if len(head) >= 262 and head[257:262] == b"ustar":
        return NONE
    return None
