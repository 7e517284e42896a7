"""report/summary: what every report format shares."""

from __future__ import annotations

from pathlib import Path

from shardrun.report.summary import log_tail


def test_log_tail_reads_only_the_end_of_a_huge_log(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    with open(log, "wb") as f:
        f.truncate(50 << 30)  # 50 GiB of holes: reading them all would take minutes
        f.seek(0, 2)
        f.write(b"".join(b"line %d\n" % k for k in range(100)))
    tail = log_tail(str(log), lines=3)
    assert tail == "line 97\nline 98\nline 99"
