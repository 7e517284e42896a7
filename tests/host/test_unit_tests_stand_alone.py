"""tests/unit runs inside Dockerfile.test, which has only pytest and rich: a unit test
that imports docker-py or anyio, even through a module it tests, breaks `shardrun run` on
this repository. Here the same tests run with those packages made unimportable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABSENT = ("docker", "anyio", "requests", "paramiko", "jsonschema", "hypothesis")
SCRIPT = f"""
import sys
for name in {ABSENT!r}:
    sys.modules[name] = None  # `import name` now fails, as in the test image
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "tests/unit"]))
"""


def test_the_unit_tests_pass_without_docker_py_anyio_or_the_test_extras():
    # No plugin autoload: the image's pytest has none, and anyio's would import anyio.
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
