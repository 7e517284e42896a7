"""Hide secret values in a shard's output.

Secrets handed to a shard (tokens, passwords in its environment) must never reach its log
file, the live view or a report: those outlive the run, are shared and get uploaded as CI
artifacts. So container output passes through a `Masker` before anything else sees it, and
error messages and report fields through `Masker.mask_text`.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

MARK = "***"
_MARK = MARK.encode()


class Masker:
    """Replaces every occurrence of a secret in one output stream by `***`.

    Docker hands over output in reads of any size, so a secret can arrive split across
    several of them. `feed` therefore holds back the end of a read while it could still be
    the start of a secret (at most len(longest secret) - 1 bytes) and `flush` releases it
    at the end of the stream; the result is the same as masking the whole stream at once.
    That held-back tail is per stream: use one Masker per stream.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        texts = sorted({s for s in secrets if s}, key=len, reverse=True)
        # surrogateescape: a value from os.environ that was not valid UTF-8 becomes again
        # the bytes the container actually prints.
        self._values = sorted(
            {t.encode("utf-8", "surrogateescape") for t in texts}, key=len, reverse=True
        )
        # Longest first: re takes the first alternative that matches, so where one secret is
        # a prefix of another the longer one is hidden whole, not with its tail showing.
        self._pattern = (
            re.compile(b"|".join(map(re.escape, self._values))) if self._values else None
        )
        self._text_pattern = re.compile("|".join(map(re.escape, texts))) if texts else None
        self._held = b""

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __repr__(self) -> str:
        # How many, never which: tracebacks that show locals print this.
        return f"Masker({len(self._values)} secrets)"

    def feed(self, chunk: bytes) -> bytes:
        """The masked part of the stream so far that no later read can change."""
        if self._pattern is None:
            return chunk
        data = self._held + chunk if self._held else chunk
        open_starts = self._open_starts(data)
        hold = open_starts[0] if open_starts else len(data)
        out: list[bytes] = []
        pos = 0
        for match in self._pattern.finditer(data):
            # A match at or after `hold` is undecided: a longer secret, or one starting
            # earlier, may still complete it with the next read.
            if match.start() >= hold:
                break
            out += (data[pos : match.start()], _MARK)
            pos = match.end()
            if pos > hold:  # that start lies inside the secret just hidden: no longer open
                i = bisect.bisect_left(open_starts, pos)
                hold = open_starts[i] if i < len(open_starts) else len(data)
        out.append(data[pos:hold])
        self._held = data[hold:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The rest of the stream, masked, once it has ended."""
        held, self._held = self._held, b""
        return self._pattern.sub(_MARK, held) if held and self._pattern else held

    def mask_text(self, text: str) -> str:
        """`text` with every secret replaced by `***`, for whole strings."""
        return self._text_pattern.sub(MARK, text) if self._text_pattern else text

    def _open_starts(self, data: bytes) -> list[int]:
        """Positions from which the rest of `data` is a proper prefix of some secret.

        Only the last len(secret) - 1 bytes can be one, so this never rescans output that
        was already decided.
        """
        end, starts = len(data), set()
        for value in self._values:
            first = value[:1]
            i = data.find(first, max(0, end - len(value) + 1))
            while i != -1:
                if value.startswith(data[i:]):
                    starts.add(i)
                i = data.find(first, i + 1)
        return sorted(starts)
