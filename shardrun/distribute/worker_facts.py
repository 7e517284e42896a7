"""What shardrun has learned about each worker (by URL), kept in .shardrun/workers.json:
which refuse thin docker archives, which refuse a codec, and how fast the last transfer
in each codec went. Every change is read, merged and written under the file's lock, so
concurrent runs keep each other's facts.

The file is read as a foreign one (state/foreign.py: a regular file in its folder,
bounded in size and depth), and every fact is checked on the way in: a damaged file is
no facts, said in one line, and a damaged fact is left out; both are written anew with
the next fact learned.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.sizes import size_text
from shardrun.state import foreign
from shardrun.state.files import exclusive, write_atomic

# A few hundred bytes a worker and codec: thousands of workers (the file keeps every URL
# it has met, CI runners' too) fit in 4 MB.
WORKERS_MAX = 4_000_000
_DEPTH = 6  # links > url > codec > figures is 4 deep
_TEXT_MAX = 2048  # characters of a URL or a codec's name
_SECONDS_MAX = 1e7  # seconds of a load: 115 days, beyond any real one
_BYTES_MAX = 2**63  # bytes: an archive's size is an int64 wherever it is counted
_EPOCH_MAX = 1e11  # epoch seconds: the year 5138


@dataclass(frozen=True)
class Transfer:
    """One load's figures: `raw` bytes of the archive went as `wire` bytes, and the
    engine had loaded them after `seconds`; for `link_seconds` of those the bytes were
    going out (not waiting for the compressor): an engine takes the whole archive in
    before it unpacks any layer, so this is the link's own pace."""

    codec: str
    raw: int
    wire: int
    seconds: float
    link_seconds: float
    at: float = 0.0  # epoch seconds

    @property
    def rate(self) -> float:
        """Archive bytes a second, the load long: the figure modes are compared by."""
        return self.raw / self.seconds if self.seconds > 0 else 0.0

    @property
    def link_rate(self) -> float:
        """Bytes a second the link carried."""
        return self.wire / self.link_seconds if self.link_seconds > 0 else float("inf")


class WorkerFacts:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = self._read()

    def _read(self) -> dict[str, Any]:
        then = "it is written anew when shardrun next learns of a worker"
        return _checked(foreign.read_state(self.path, WORKERS_MAX, _DEPTH, then))

    def _change(self, change: Callable[[dict[str, Any]], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive(self.path):
            data = self._read()
            change(data)
            write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True))
        self._data = data

    # ---- thin docker archives
    def allows_thin(self, url: str) -> bool:
        return url not in _list(self._data.get("thin_refused"))

    def refuse_thin(self, url: str) -> None:
        def change(data: dict) -> None:
            data["thin_refused"] = sorted({*_list(data.get("thin_refused")), url})

        self._change(change)

    # ---- codecs
    def refused_codecs(self, url: str) -> set[str]:
        return set(_list(_table(self._data.get("codec_refused")).get(url)))

    def refuse_codec(self, url: str, codec: str) -> None:
        def change(data: dict) -> None:
            table = _table(data.get("codec_refused"))
            table[url] = sorted({*_list(table.get(url)), codec})
            data["codec_refused"] = table

        self._change(change)

    def transfers(self, url: str) -> dict[str, Transfer]:
        """The last transfer to the worker in each codec."""
        found = {}
        for codec, entry in _table(_table(self._data.get("links")).get(url)).items():
            try:
                found[codec] = Transfer(
                    codec,
                    int(entry["raw"]),
                    int(entry["wire"]),
                    float(entry["seconds"]),
                    float(entry["link_seconds"]),
                    float(entry.get("at", 0)),
                )
            except (KeyError, TypeError, ValueError):
                continue
        return found

    def last_transfer(self, url: str) -> Transfer | None:
        found = self.transfers(url).values()
        return max(found, key=lambda t: t.at) if found else None

    def describe(self, url: str) -> str:
        """The last transfer's codec and link rate, and the codecs refused: "zstd, 11.9
        MB/s; gzip refused"; "" if nothing is known."""
        parts = []
        if (last := self.last_transfer(url)) is not None:
            rate = last.link_rate if last.link_seconds > 0 else last.rate
            parts.append(f"{last.codec}, {size_text(rate)}/s")
        parts += [f"{codec} refused" for codec in sorted(self.refused_codecs(url))]
        return "; ".join(parts)

    def record(self, url: str, transfer: Transfer) -> None:
        entry = {
            "raw": transfer.raw,
            "wire": transfer.wire,
            "seconds": round(transfer.seconds, 3),
            "link_seconds": round(transfer.link_seconds, 3),
            "at": round(transfer.at or time.time(), 3),
        }

        def change(data: dict) -> None:
            links = _table(data.get("links"))
            links[url] = {**_table(links.get(url)), transfer.codec: entry}
            data["links"] = links

        self._change(change)


def _checked(data: object) -> dict[str, Any]:
    """The facts of `data` that have their shapes; the rest left out."""
    data = _table(data)
    refused = _table(data.get("codec_refused"))
    links = _table(data.get("links"))
    checked = {
        "thin_refused": _texts(data.get("thin_refused")),
        "codec_refused": {url: _texts(codecs) for url, codecs in refused.items() if _is_text(url)},
        "links": {
            url: {
                codec: figures
                for codec, entry in _table(by_codec).items()
                if _is_text(codec) and (figures := _figures(entry)) is not None
            }
            for url, by_codec in links.items()
            if _is_text(url)
        },
    }
    return {key: value for key, value in checked.items() if value}  # as it was written


def _figures(entry: object) -> dict[str, float | int] | None:
    entry = _table(entry)
    found = {
        "raw": foreign.number(entry.get("raw"), 0, _BYTES_MAX),
        "wire": foreign.number(entry.get("wire"), 0, _BYTES_MAX),
        "seconds": foreign.number(entry.get("seconds"), 0, _SECONDS_MAX),
        "link_seconds": foreign.number(entry.get("link_seconds"), 0, _SECONDS_MAX),
        "at": foreign.number(entry.get("at", 0), 0, _EPOCH_MAX),
    }
    if any(value is None for value in found.values()):
        return None
    return {k: int(v) if k in ("raw", "wire") else v for k, v in found.items() if v is not None}


def _texts(value: object) -> list[str]:
    return [item for item in _list(value) if _is_text(item)]


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _TEXT_MAX


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _table(value: object) -> dict:
    return value if isinstance(value, dict) else {}
