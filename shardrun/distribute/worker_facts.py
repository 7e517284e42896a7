"""What shardrun has learned about each worker (by URL), kept in .shardrun/workers.json:
which refuse thin docker archives, which refuse a codec, and how fast the last transfer
in each codec went. Every change is read, merged and written under the file's lock, so
concurrent runs keep each other's facts.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shardrun.model.sizes import size_text
from shardrun.state.files import exclusive, write_atomic


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
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _change(self, change) -> None:
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


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _table(value: object) -> dict:
    return value if isinstance(value, dict) else {}
