"""report.html in a real browser: headless Chromium (Debian's `chromium`, which .ci/run
installs) renders the page of a real two-worker run, takes a screenshot, and its network
log shows that the page itself asked for nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.engine.conftest import shards_toml

SHARDS = """
[defaults]
network = "none"
[[shard]]
name = "ok-{index}"
count = 3
command = ["sleep", "1"]
[[shard]]
name = "bad"
command = ["sh", "-c", "echo it broke; exit 2"]
"""
QUIET = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "chromium is not installed (apt-get install chromium; .ci/run does)", pytrace=False
        )
    return found


def render(page: Path, out: Path) -> tuple[str, list[str]]:
    """The DOM after rendering, and the URLs the page itself requested (the browser's
    own background requests have no origin as initiator)."""
    netlog = out / "netlog.json"
    dom = subprocess.run(
        [chromium(), *QUIET, f"--log-net-log={netlog}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    asked = [
        e["params"]["url"]
        for e in log["events"]
        if names.get(e["type"]) == "URL_REQUEST_START_JOB"
        and e.get("params", {}).get("initiator") not in (None, "not an origin")
    ]
    return dom, asked


class Kinds(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def handle_starttag(self, tag, attrs):
        if kind := dict(attrs).get("data-kind"):
            self.kinds.append(kind)


def test_report_html_renders_every_bar_and_fetches_nothing(project, hosts, tmp_path):
    project.write("shards.toml", shards_toml(project, SHARDS))
    result = project.shardrun(
        "run",
        "--plain",
        "--worker",
        "default*2",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*2",
        "--html",
        str(tmp_path / "copy.html"),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    run_dir = Path(project.report()["shards"][0]["log"]).parent
    page = run_dir / "report.html"
    assert (tmp_path / "copy.html").read_text() == page.read_text()

    dom, asked = render(page, tmp_path)

    parser = Kinds()
    parser.feed(dom)
    assert parser.kinds.count("shard") == 4  # one bar per shard
    assert parser.kinds.count("distribution") == 2  # one per worker's distribution
    assert asked == []
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium(), *QUIET, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5000


def test_the_network_check_sees_a_page_that_fetches(tmp_path):
    page = tmp_path / "fetchy.html"
    page.write_text('<html><body><img src="http://198.18.9.9/x.png"></body></html>')
    _, asked = render(page, tmp_path)
    assert asked == ["http://198.18.9.9/x.png"]
