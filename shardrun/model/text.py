"""Text shardrun did not write, made safe to show: it is data, never a command.

A container's output, its file names and the names and messages of its JUnit file come
from the code under test, which on a CI runner may be a stranger's pull request. Shown
raw, an escape byte recolours or rewrites the terminal, and a line break followed by
`::set-env ...` or `::add-mask::` is a GitHub workflow command that the runner obeys.
Every such text goes through `one_line` (a record: a name, a message, a path) or
`visible_lines` (a log tail) on its way to a terminal, a plain log or a CI annotation.
"""

from __future__ import annotations

import re

# Not printable: C0 and C1 controls, DEL, line and paragraph separators, format characters
# (zero-width and bidirectional overrides), unassigned and private-use code points.
_HIDDEN = re.compile(r"[^\t\x20-\x7e]")


def _escape(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def one_line(text: str) -> str:
    """`text` on one line, every unprintable character (line breaks too) spelled out as in
    Python: "\\x1b[31m", "a\\nb"."""
    return "".join(_escape(c) for c in text) if _HIDDEN.search(text) or "\t" in text else text


def visible_lines(text: str) -> list[str]:
    """`text` split into its lines, each with its unprintable characters spelled out (a tab
    stays a tab): for log tails, shown line for line."""
    return [
        "".join(c if c == "\t" else _escape(c) for c in line) if _HIDDEN.search(line) else line
        for line in text.splitlines()
    ]


def counted(count: int, noun: str, plural: str = "") -> str:
    """`count` with `noun` in the right number: "1 shard", "0 shards", "2 shards". The
    plural is `noun` + "s" unless given ("1 entry", "2 entries")."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
