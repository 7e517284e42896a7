"""report.html (pure): the timeline's bars, failed shards first, escaping, no fetches."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from shardrun.model.results import ShardResult, Status
from shardrun.report.html import to_html
from shardrun.report.summary import RunSummary, WorkerReport


def shard(name, status, worker, slot, started, finished, code=0, log=None, artifacts=()):
    return ShardResult(
        name=name,
        status=status,
        exit_code=code,
        started=started,
        finished=finished,
        worker=worker,
        slot=slot,
        log_path=log,
        artifacts=tuple(artifacts),
    )


def run(*results, workers=()):
    return RunSummary(
        run_id="r1",
        project="demo<&>",
        image_id=None,
        started=90.0,
        finished=130.0,
        results=results,
        workers=workers,
        build={"started": 90.0, "finished": 95.0, "cached_steps": 2, "total_steps": 3},
        save={"started": 95.0, "finished": 98.0, "bytes": 10_000_000, "reused": False},
    )


class Elements(HTMLParser):
    """Start tags with their attributes; any attribute that would make a browser fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    return parser


def test_one_bar_per_shard_that_ran_and_per_worker_distribution_plus_build_and_save(tmp_path: Path):
    workers = (
        WorkerReport("local", "unix://", 2, load="none", load_started=98.0, load_seconds=0.1),
        WorkerReport(
            "box2", "tcp://b", 1, load="thin", sent=20_000, load_started=98.0, load_seconds=2.0
        ),
    )
    page = to_html(
        run(
            shard("a", Status.PASS, "local", 1, 100.0, 110.0),
            shard("b", Status.FAIL, "local", 1, 110.0, 120.0, code=3),
            shard("c", Status.PASS, "box2", 1, 105.0, 130.0),
            shard("never", Status.NOT_RUN, None, None, None, None, code=None),
            workers=workers,
        ),
        tmp_path,
    )

    bars = [a for t, a in parse(page).tags if t == "div" and "data-kind" in a]
    kinds = [a["data-kind"] for a in bars]
    assert kinds.count("shard") == 3 and kinds.count("distribution") == 2
    assert kinds.count("build") == 1 and kinds.count("save") == 1
    b = next(a for a in bars if a["title"].startswith("b: "))
    assert b["title"] == "b: FAIL in 10.0s, exit 3"
    assert "left:50.00%;width:25.00%" in b["style"]  # the run spans 90 s to 130 s


def test_failed_shards_come_first_with_cases_log_tail_and_links(tmp_path: Path):
    log = tmp_path / "b.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "E boom <here>\n")
    art = tmp_path / "b" / "artifacts" / "out" / "r.txt"
    page = to_html(
        run(
            shard("a", Status.PASS, "local", 1, 100.0, 110.0),
            shard("t", Status.TIMEOUT, "local", 2, 100.0, 110.0, code=None),
            shard(
                "b",
                Status.FAIL,
                "local",
                1,
                110.0,
                120.0,
                code=3,
                log=str(log),
                artifacts=[str(art)],
            ),
        ),
        tmp_path,
    )

    failed = re.findall(r'data-shard="([^"]+)"', page)
    assert failed == ["b", "t"]  # FAIL before TIMEOUT; the pass is not among them
    assert "E boom &lt;here&gt;" in page and "line 69\n" not in page  # escaped tail only
    hrefs = [a["href"] for t, a in parse(page).tags if t == "a"]
    assert hrefs == ["b.log", "b/artifacts/out/r.txt"]  # relative to the run's folder


def test_nothing_on_the_page_is_fetched_and_names_are_escaped(tmp_path: Path):
    page = to_html(run(shard("x<y", Status.PASS, "local", 1, 100.0, 101.0)), tmp_path)
    assert "demo&lt;&amp;&gt;" in page and "x&lt;y" in page
    tags = parse(page).tags
    assert not [t for t, a in tags if t in ("script", "img", "link", "iframe", "object")]
    assert not [a for _, a in tags if "src" in a]
    assert "url(" not in page and "@import" not in page


def test_500_shards_stay_a_light_page(tmp_path: Path):
    results = [
        shard(f"s-{i}", Status.PASS, f"w{i % 10}", i % 4, 100.0 + i % 7, 102.0 + i % 7)
        for i in range(500)
    ]
    page = to_html(run(*results), tmp_path)
    assert page.count('data-kind="shard"') == 500
    assert len(page) < 300_000


def test_a_merged_run_has_a_lane_group_per_partition_with_its_loads_and_slots(tmp_path):
    import dataclasses

    workers = (
        WorkerReport("1:local", "unix://", 1, load="full", load_started=99.0, load_seconds=2.0),
        WorkerReport("2:local", "unix://", 2, load="full", load_started=99.5, load_seconds=3.0),
    )
    summary = dataclasses.replace(
        run(
            shard("a", Status.PASS, "1:local", 1, 101.0, 110.0),
            shard("b", Status.FAIL, "2:local", 2, 103.0, 120.0, code=1),
            shard("c", Status.PASS, "2:local", 1, 103.0, 104.0),
            workers=workers,
        ),
        partitions=(
            {"index": 2, "total": 2, "machine": "ci-b", "exit_code": 1},
            {"index": 1, "total": 2, "machine": "ci-a", "exit_code": 0},
        ),
    )
    page = to_html(summary, tmp_path)
    order = re.findall(r'class="group">([^<]*)<|class="label">([^<]*)<', page)
    shown = [group or label for group, label in order]
    assert shown[shown.index("partition 1/2 on ci-a: exit 0") :] == [
        "partition 1/2 on ci-a: exit 0",
        "image to 1:local",
        "1:local/1",
        "partition 2/2 on ci-b: exit 1",
        "image to 2:local",
        "2:local/1",
        "2:local/2",
    ]
