"""The image as one file for hosted CI: written by the build job (`build --output`), read by
every partition job (`run --image`). Only files are shared between such jobs.

The file is a `docker save` archive, compressed as its name says: `.tar` (none),
`.tar.gz` (gzip level 1) or `.tar.zst` (zstd), on every core (see codecs). It is written
from the cache's verified tarball, streamed, to a temp file renamed into place once it decompresses
to exactly that tarball. Reading it back decompresses it into the cache (where it is
reused while the image is unchanged) and verifies it as a save of the image its config
names; a truncated or damaged file is one line and nothing is loaded anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Self

from shardrun.distribute.artifact import archive_intake, layers, save_manifest, tarball
from shardrun.distribute.artifact.tarball import Artifact
from shardrun.distribute.compress import codecs
from shardrun.engine.api import Engine
from shardrun.model.errors import ConfigError, DiskFull, InfraError
from shardrun.model.transit import IMAGE_FILE_SUFFIXES
from shardrun.state import foreign, layout
from shardrun.state.files import exclusive, temp_file

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ImageFile:
    path: Path
    image_id: str
    codec: str
    size: int  # bytes of the file
    raw_size: int  # bytes of the archive it holds


def codec_of(path: Path) -> str:
    """The compression a file's name asks for; ConfigError for any other name."""
    for suffix, codec in IMAGE_FILE_SUFFIXES.items():
        if path.name.endswith(suffix) and len(path.name) > len(suffix):
            return codec
    raise ConfigError(
        f'--output "{path}": the name says no format; end it with .tar.zst (zstd), '
        ".tar.gz (gzip) or .tar (none)"
    )


def write(tarball: Path, image_id: str, out: Path) -> ImageFile:
    """`tarball` (a verified save of `image_id`) as `out`, compressed by its name."""
    with Writer(out, tarball.stat().st_size) as writer:
        with open(tarball, "rb") as src:
            while block := src.read(_CHUNK):
                writer.feed(block)
        return writer.finish(image_id)


def save_and_write(
    engine: Engine, image_id: str, cache_dir: Path, out: Path
) -> tuple[Artifact, ImageFile]:
    """The cache's tarball of the image and `out` from it: compressed as the engine saves
    when the cache lacks the tarball (the two overlap), else from the cached one."""
    with Writer(out, engine.image_size(image_id)) as writer:
        saved = tarball.ensure(engine, image_id, cache_dir, also=writer.feed)
        if not saved.reused:
            return saved, writer.finish(image_id)
    return saved, write(saved.path, image_id, out)


class Writer:
    """An image file written as its archive streams by: fed blocks (as the build engine's
    save writes the cache's tarball, so the save and the compression overlap), then
    `finish`ed once that tarball is verified: the file must read back to exactly the bytes
    fed, then it is renamed into place. Left without `finish`, nothing of it remains."""

    def __init__(self, out: Path, expected_size: int) -> None:
        self.out, self.codec = out, codec_of(out)
        self._expected = expected_size
        self._stack = contextlib.ExitStack()
        # CRC-32 of what was fed, to compare with what the file reads back to: it catches a
        # bad disk or a cut write as well as a cryptographic hash would, at a fifth of the
        # CPU (two passes over the archive on a 2-core runner are seconds of sha256).
        self._fed = 0
        self._raw_size = 0
        self._sink: codecs.Sink | None = None

    def __enter__(self) -> Self:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._stack.enter_context(temp_file(self.out, "the image file", self._expected))
        self._sink = codecs.compressor(self.codec, self._tmp.file)
        self._stack.callback(self._close_sink)  # before the temp file's own exit
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()  # the temp file is removed unless finish published it

    def _close_sink(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.close()  # the compressor's last frame (and its threads)

    def feed(self, block: bytes) -> None:
        assert self._sink is not None, "fed after finish"
        self._fed = zlib.crc32(block, self._fed)
        self._raw_size += len(block)
        self._sink.write(block)

    def finish(self, image_id: str) -> ImageFile:
        self._close_sink()
        self._tmp.file.flush()
        with open(self._tmp.path, "rb") as back:
            written, size = 0, 0
            for block in codecs.decompressed(back, self.codec):
                written = zlib.crc32(block, written)
                size += len(block)
        if (written, size) != (self._fed, self._raw_size):
            raise InfraError(
                f"{self.out}: the written file does not read back as the image; "
                "check the disk and run again"
            )
        self._tmp.publish()
        return ImageFile(self.out, image_id, self.codec, self.out.stat().st_size, self._raw_size)


# The most an image file may unpack to, whatever the disk holds: no image shardrun runs
# comes near it (an overlay2 image is at most 128 layers), and a file that does is a
# decompression bomb, not an image. The tests lower it.
CEILING = 64 << 30
# Left free on the cache's disk by an import: the run still writes logs and reports.
MARGIN = 1 << 30


def import_into_cache(
    path: Path, cache_dir: Path, option: str = "--image"
) -> tuple[str, Path, bool]:
    """The image ID a file holds, its verified tarball in the cache, and whether the cache
    had that already (it is decompressed anyway: the ID is known only once it is read).
    ConfigError if it is no image file, InfraError if it is truncated or damaged or would
    not fit; nothing is left in the cache then.

    The file comes from another job: it must be a regular file (a FIFO would block),
    what it unpacks to is bounded (archive_intake), and every name in it, the manifest's
    included, stays inside the archive, before anything of it is read."""
    try:
        fd = foreign.open_regular(path)
    except (OSError, foreign.Refused) as exc:
        raise ConfigError(
            f"{option} {path}: {_why(exc) if isinstance(exc, foreign.Refused) else exc.strerror}; "
            "give the image file the build job wrote (shardrun build --output)"
        ) from None
    with open(fd, "rb") as f:
        codec = codecs.sniff(os.pread(fd, 512, 0))
        if codec is None:
            raise ConfigError(
                f"{option} {path}: not an image file (a docker archive, plain, gzip "
                "or zstd); give the file `shardrun build --output` wrote"
            )
        return _import(f, path, codec, cache_dir, option)


def _import(
    f: BinaryIO, path: Path, codec: str, cache_dir: Path, option: str
) -> tuple[str, Path, bool]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    room = shutil.disk_usage(cache_dir).free - MARGIN
    cap = min(CEILING, room)
    # Decompressed under a name of its own first: its image ID is known only once read.
    staging = cache_dir / f"import-{os.getpid()}.tar"
    # About what an image file of zstd or gzip holds, for the message of a disk filled up.
    needed = os.fstat(f.fileno()).st_size * 3
    with temp_file(staging, "the image archive", needed) as tmp:
        try:
            if cap <= 0:
                raise archive_intake.Overflow("no room", 1)
            members = archive_intake.copy_archive(codecs.decompressed(f, codec), tmp.file, cap)
            tmp.file.flush()
            with tarfile.open(tmp.path) as tar:
                manifest = save_manifest.read_manifest(tar)
                image_id = save_manifest.archive_image_id(tar, manifest)
            _check_layers(manifest, members)
        except archive_intake.Overflow as exc:
            if exc.reached <= CEILING:
                raise DiskFull(
                    f"{cache_dir}: no room for the image of {option} {path}: it unpacks to "
                    f"more than the {max(cap, 0) / 1e6:.0f} MB free there (less 1 GiB kept "
                    "free); free some space there, or delete .shardrun/cache"
                ) from None
            raise ConfigError(
                f"{option} {path} unpacks to more than {CEILING / (1 << 30):g} GiB, more than any image "
                "shardrun runs: it is no image file; give the file `shardrun build --output` wrote"
            ) from None
        except (KeyError, ValueError) as exc:  # a whole archive, but not of an image
            raise ConfigError(
                f"{option} {path}: not a docker image archive ({_why(exc)}); "
                "give the file `shardrun build --output` wrote"
            ) from None
        except codecs.decode_errors() as exc:
            raise InfraError(
                f"{option} {path} is truncated or damaged ({_why(exc)}); "
                "download it again, or rebuild it"
            ) from None
        final = layout.tarball(cache_dir, image_id)
        with exclusive(final):
            if final.exists() and layers.is_complete(final, image_id):
                os.utime(final)
                return image_id, final, True
            if not layers.is_complete(tmp.path, image_id):
                raise InfraError(
                    f"{option} {path} is truncated or damaged (a layer is "
                    "missing); download it again, or rebuild it"
                )
            tmp.publish(final)
    return image_id, final, False


def config_of(tarball: Path) -> dict:
    """The image config of a verified tarball of the cache (its labels, its layers)."""
    with tarfile.open(tarball) as tar:
        config = json.loads(save_manifest.read_manifest(tar).config)
    if not isinstance(config, dict):
        raise TypeError("the image config is not a JSON object")
    return config


def _check_layers(manifest: save_manifest.Manifest, members: list[tarfile.TarInfo]) -> None:
    """Each layer the manifest names is a file of the archive (or a link to one in it),
    one per layer of the config. Refused otherwise."""
    files = {m.name for m in members if m.isreg()}
    links = {m.name: save_manifest.resolve_link(m) for m in members if m.issym() or m.islnk()}
    named = manifest.entry["Layers"]
    if len(named) != len(manifest.diff_ids):
        raise foreign.Refused(
            f"manifest.json names {len(named)} layer files for the config's "
            f"{len(manifest.diff_ids)} layers"
        )
    for name in named:
        # One not there at all is a cut archive's, left to is_complete to name.
        if name in links.keys() | files and links.get(name, name) not in files:
            raise foreign.Refused(f"a layer is not a file of the archive: {name}")


def _why(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
