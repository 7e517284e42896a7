"""The process that compresses a tarball for the run's shared stream (shared_stream).

`python -m shardrun.distribute.compress.compress_child CODEC SOURCE_FD START END OUT_FD`: compresses
bytes START to END of the open file SOURCE_FD (read by offset: the runner's other readers
of that file share its position) into the open file OUT_FD, and says on stdout how far it
got, a line a write: `w BYTES` when BYTES more compressed bytes are in the file, `r BYTES`
when BYTES more of the source were taken in; last, `cpu SECONDS`, the CPU time it spent,
all its codec's threads counted. A process of its
own, so that figure is exact (a thread's CPU clock misses the threads a codec starts) and
the compression never contends with the runner's senders for the GIL. It stops when its
runner is gone, killed or not: its next line finds the pipe closed (BrokenPipeError), so
nothing is left compressing for nobody.
"""

from __future__ import annotations

import resource
import sys
import threading
from typing import BinaryIO, cast

from shardrun.distribute.compress import codecs


class _Reported:
    """The output file as the codec's sink: every write goes to the file at once (the
    readers send what the file holds), then is reported. A codec may write from threads
    of its own, hence the lock."""

    def __init__(self, fd: int) -> None:
        self._out = open(fd, "wb", buffering=0)  # noqa: SIM115 - closed by close()
        self._lock = threading.Lock()

    def write(self, data: bytes) -> int:
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[self._out.write(view) or 0 :]
            _say(f"w {len(data)}")
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._out.close()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def compress(codec: str, source: int, start: int, end: int, fd: int) -> None:
    out = _Reported(fd)
    sink = codecs.compressor(codec, cast(BinaryIO, out))
    for block in codecs.blocks_of(source, start, end):
        sink.write(block)
        _say(f"r {len(block)}")
    sink.close()
    out.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _say(f"cpu {usage.ru_utime + usage.ru_stime:.3f}")


def main(argv: list[str]) -> int:
    codec, source, start, end, fd = argv
    try:
        compress(codec, int(source), int(start), int(end), int(fd))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
