"""examples/regression-matrix runs as its README says: ten shards on one harness image,
exactly one failing on its stale golden file, with the diff among its artifacts."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.engine.conftest import BUSYBOX_IMAGE, ROOT, Project

EXAMPLE = ROOT / "examples" / "regression-matrix"


def test_the_regression_matrix_example_fails_exactly_its_stale_golden_shard(
    tmp_path, docker_client, busybox_image
):
    root = tmp_path / "regression-matrix"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".shardrun"))
    example = Project(root, "regression-matrix")

    result = example.shardrun("run", "--plain", "--build-arg", f"BASE_IMAGE={BUSYBOX_IMAGE}")

    try:
        assert result.returncode == 1, result.stdout + result.stderr
        statuses = example.statuses()
        assert len(statuses) == 10
        assert {n for n, s in statuses.items() if s != "PASS"} == {"div"}
        run_dir = Path(example.report()["shards"][0]["log"]).parent
        diff = (run_dir / "div/artifacts/out/diffs/div/round.diff").read_text()
        assert "-4\n" in diff and "+2\n" in diff  # golden 4, 3; the calculator says 3, 2
        assert not (run_dir / "add/artifacts").exists()  # only failures' artifacts
        cases = ET.parse(run_dir / "junit.xml").getroot()
        failing = [c.get("name") for c in cases.iter("testcase") if c.find("failure") is not None]
        assert failing == ["round"]
        assert "failing in div: div::round" in result.stdout
    finally:
        for image in docker_client.images.list(
            filters={"label": "shardrun.project=regression-matrix"}
        ):
            docker_client.images.remove(image.id, force=True)
