"""The HTML timeline: one lane per worker slot, bars placed by start and end (pure)."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from shardrun.report import RunSummary, WorkerReport
from shardrun.results import ShardResult, Status
from shardrun.timeline import to_html


def shard(name, status, worker, slot, started, finished, code=0):
    return ShardResult(name=name, status=status, exit_code=code, started=started,
                       finished=finished, worker=worker, slot=slot, log_path=None)


def run(*results):
    return RunSummary(run_id="r1", project="demo<&>", image_id=None, started=90.0,
                      finished=130.0, results=results,
                      workers=(WorkerReport("local", "unix://", 2),))


def bars(page: str) -> dict[str, tuple[float, float, str]]:
    found = re.findall(
        r'left:([\d.]+)%;width:([\d.]+)%;background:(#\w+)" title="([^"]*)">([^<]*)<', page
    )
    return {name: (float(left), float(width), title) for left, width, _, title, name in found}


def test_bars_are_placed_by_start_and_end_within_the_run():
    page = to_html(run(
        shard("a", Status.PASS, "local", 1, 100.0, 110.0),
        shard("b", Status.FAIL, "local", 1, 110.0, 120.0, code=3),
        shard("c", Status.PASS, "box2", 1, 105.0, 120.0),
        shard("never", Status.NOT_RUN, None, None, None, None, code=None),
    ))
    placed = bars(page)
    assert placed["a"][:2] == (0.0, 50.0)  # the timeline spans first start to last end
    assert placed["b"][:2] == (50.0, 50.0)
    assert placed["c"][:2] == (25.0, 75.0)
    assert placed["b"][2] == "b: FAIL in 10.0s, exit 3"
    assert "never" not in placed
    lanes = re.findall(r'<div class="slot">([^<]*)</div>', page)
    assert lanes == ["box2/1", "local/1"]
    assert "3 shards on 2 slots over 20.0s" in page


def test_names_are_escaped_and_the_page_parses():
    page = to_html(run(shard("x<y", Status.PASS, "local", 1, 100.0, 101.0)))
    assert "demo&lt;&amp;&gt;" in page and "x&lt;y" in page
    body = page.split("<body>", 1)[1].split("</body>", 1)[0]
    ET.fromstring(f"<body>{body}</body>")  # well-formed: every tag closed


def test_an_empty_run_still_renders():
    assert "0 shards on 0 slots" in to_html(run())
