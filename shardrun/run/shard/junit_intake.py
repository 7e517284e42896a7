"""A shard's JUnit file as it leaves its container: read once, in bounded time and memory,
masked, and rewritten as a small, well-formed file that every report then reads.

The file is the test's own output, so it is hostile input: a 200 MB attribute (expat
2.5 rescans a token it is fed in small pieces, so that took 198 s), a million cases
(1.85 GB of runner memory as a tree), or a secret in a failure message. So the raw file
never reaches the disk: it is parsed as it streams out of the container, in large
pieces and element by element; what passes the limits below is written out, every
string masked and cut to length; the rest is counted, and the note says what was left.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape as xml_escape
from xml.sax.saxutils import quoteattr

from shardrun.report.junit import xml_safe
from shardrun.run.shard.masking import Masker

JUNIT_MAX = 32 * 1024 * 1024  # bytes of a JUnit file that are read at all
MAX_CASES = 10_000  # passing cases kept (failing ones too, as many again)
MAX_NAME = 500  # characters of a name, classname or file
MAX_MESSAGE = 1_000  # characters of a failure's message
MAX_TEXTS = 4 * 1024 * 1024  # characters of failure texts kept in all; then messages only
MAX_TEXT = 16 * 1024  # characters of one failure text
_SECRET_MAX = 4096  # characters: longer secrets than this are not expected
_FEED = 4 << 20  # bytes given to the parser at once: few feeds, so few rescans of a token
_BAD = ("failure", "error", "skipped")


@dataclass(frozen=True)
class Intake:
    path: str | None  # the rewritten file; None if the shard wrote no usable JUnit
    note: str = ""  # what was not kept, for the summary; "" when nothing was


class _NotJUnit(Exception):
    pass


def take_in(data: BinaryIO, size: int, target: Path, masker: Masker, limit: int) -> Intake:
    """Parse the JUnit file streamed in `data` (`size` bytes) into `target`. A file over
    `limit` bytes is not read at all."""
    if size > limit:
        return Intake(None, f"JUnit file of {_mb(size)} not read: over the {_mb(limit)} limit")
    writer = _Writer(masker)
    parser: ET.XMLPullParser[Any] = ET.XMLPullParser(events=("start", "end"))
    try:
        for piece in _pieces(data):
            parser.feed(piece)
            writer.take(parser.read_events())
        parser.close()
        writer.take(parser.read_events())
    except (ET.ParseError, _NotJUnit, LookupError):  # LookupError: an unknown encoding
        return Intake(None, "JUnit file not read: not well-formed JUnit XML")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(writer.document(), encoding="utf-8")
    return Intake(str(target), writer.note())


def _pieces(data: BinaryIO) -> Iterable[bytes]:
    while piece := data.read(_FEED):
        yield piece


class _Writer:
    """Folds parse events into kept cases; each testcase is dropped from the tree once
    read, so memory holds one case at a time."""

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self.stack: list[ET.Element] = []
        self.cases: list[str] = []
        self.passing = self.failing = self.dropped = 0
        self.texts = 0
        self.cut = False

    def take(self, events: Iterable[Any]) -> None:  # ("start" | "end", element) pairs
        for event, elem in events:
            if event == "start":
                if not self.stack and elem.tag not in ("testsuites", "testsuite"):
                    raise _NotJUnit
                self.stack.append(elem)
                continue
            self.stack.pop()
            if elem.tag == "testcase":
                self._case(elem)
                elem.clear()
                if self.stack and len(self.stack[-1]) and self.stack[-1][-1] is elem:
                    del self.stack[-1][-1]  # the last child: no search through the others

    def _case(self, node: ET.Element) -> None:
        outcome, message, text = "passed", "", ""
        for tag in _BAD:
            found = node.find(tag)
            if found is not None:
                outcome, message, text = tag, found.get("message", ""), found.text or ""
                break
        failed = outcome in ("failure", "error")
        if (self.failing if failed else self.passing) >= MAX_CASES:
            self.dropped += 1
            return
        if failed:
            self.failing += 1
        else:
            self.passing += 1
        attrs = {
            "classname": node.get("classname", ""),
            "name": node.get("name", ""),
            "file": node.get("file", ""),
        }
        out = (
            "<testcase"
            + "".join(
                f" {key}={quoteattr(self._clean(value, MAX_NAME))}"
                for key, value in attrs.items()
                if value
            )
            + f" time={quoteattr(_seconds(node.get('time')))}"
        )
        if outcome == "passed":
            self.cases.append(out + "/>")
            return
        body = ""
        if text and self.texts < MAX_TEXTS:
            body = self._clean(text, MAX_TEXT)
            self.texts += len(body)
        elif text:
            self.cut = True
        self.cases.append(
            f"{out}><{outcome} message={quoteattr(self._clean(message, MAX_MESSAGE))}>"
            f"{xml_escape(body)}</{outcome}></testcase>"
        )

    def _clean(self, value: str, most: int) -> str:
        # Masked before it is cut, since a cut through a secret would leave a part of it;
        # but cut roughly first, so that a huge value is not copied whole by each step.
        text = xml_safe(self.masker.mask_text(value[: most + _SECRET_MAX]))
        if len(text) > most:
            self.cut = True
            return text[:most] + "…"
        return text

    def document(self) -> str:
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<testsuites><testsuite>\n'
            + "\n".join(self.cases)
            + "\n</testsuite></testsuites>\n"
        )

    def note(self) -> str:
        parts = []
        if self.dropped:
            parts.append(f"{self.dropped} test cases past the first {MAX_CASES} not kept")
        if self.cut:
            parts.append("long names, messages or failure texts were cut")
        return "JUnit: " + "; ".join(parts) if parts else ""


def _seconds(value: str | None) -> str:
    try:
        seconds = float(value or 0)
    except ValueError:
        return "0"
    return f"{seconds:.3f}" if math.isfinite(seconds) and abs(seconds) < 1e12 else "0"


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB"
