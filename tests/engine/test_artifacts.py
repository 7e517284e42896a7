"""Artifacts and JUnit files copied out of real containers, on the local engine and on a
worker over tcp://, before the containers are removed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

import shardrun
from tests.engine.conftest import shards_toml

SHARDS = """
[defaults]
network = "none"
artifacts = ["/out"]
junit = "/tmp/junit.xml"
[[shard]]
name = "fails"
command = ["sh", "-c", "mkdir -p /out/deep; echo report > /out/deep/r.txt; echo '<testsuite/>' > /tmp/junit.xml; exit 3"]
[[shard]]
name = "passes"
command = ["sh", "-c", "mkdir -p /out; echo fine > /out/p.txt; echo '<testsuite/>' > /tmp/junit.xml"]
[[shard]]
name = "hangs"
timeout = "1s"
command = ["sh", "-c", "mkdir -p /out; echo before > /out/t.txt; sleep 100"]
[[shard]]
name = "big"
artifacts = ["/big"]
artifacts-max = "1k"
command = ["sh", "-c", "mkdir /big; head -c 600 /dev/zero > /big/a; head -c 600 /dev/zero > /big/b; exit 1"]
"""


@pytest.mark.parametrize("where", ["local", "tcp"])
def test_a_failed_or_timed_out_shards_files_land_on_the_host_and_a_passing_ones_do_not(
    project, hosts, where
):
    worker = "default" if where == "local" else hosts["SHARDRUN_TEST_W1_TCP"]
    project.write("shards.toml", shards_toml(project, SHARDS))

    result = project.shardrun("run", "--plain", "--worker", f"{worker}*4")

    assert result.returncode == 1, result.stdout + result.stderr
    report = project.report()
    shards = {s["name"]: s for s in report["shards"]}
    assert {n: s["status"] for n, s in shards.items()} == {
        "fails": "FAIL",
        "passes": "PASS",
        "hangs": "TIMEOUT",
        "big": "FAIL",
    }
    run_dir = Path(shards["fails"]["log"]).parent
    assert (run_dir / "fails/artifacts/out/deep/r.txt").read_text() == "report\n"
    assert shards["fails"]["artifacts"] == [str(run_dir / "fails/artifacts/out/deep/r.txt")]
    assert not (run_dir / "passes/artifacts").exists() and shards["passes"]["artifacts"] == []
    assert (run_dir / "hangs/artifacts/out/t.txt").read_text() == "before\n"
    # The JUnit file comes out whatever the status.
    # (rewritten on its way out: well-formed, masked, bounded)
    assert ET.parse(run_dir / "passes/junit.xml").getroot().tag == "testsuites"
    assert shards["passes"]["junit"] == str(run_dir / "passes/junit.xml")
    # 1 KB holds one of the two 600-byte files: the other is named, in report and summary.
    assert len(shards["big"]["artifacts"]) == 1
    assert shards["big"]["artifacts_note"].startswith("1 artifact left out: /big/")
    assert shards["big"]["artifacts_left_out"][0].endswith(
        "600 bytes, over artifacts-max (and what follows it in /big: not read)"
    )
    assert "1 artifact left out" in result.stdout
    schema = json.loads((Path(shardrun.__file__).parent / "report" / "schema.json").read_text())
    jsonschema.validate(report, schema)  # a real run's report, as documented
