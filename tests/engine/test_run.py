"""`shardrun run` end to end on the local engine: real builds, containers and signals."""

from __future__ import annotations

import hashlib
import itertools
import os
import pty
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.conftest import LABEL_PROJECT, shards_toml, wait_for_running

FOUR_SHARDS = """
[defaults]
network = "none"
timeout = "2s"

[[shard]]
name = "pass-{index}"
count = 2
command = ["sh", "-c", "echo hello from pass-{index} of {total}; cat /payload.txt"]

[[shard]]
name = "fails"
command = "sh -c 'echo about to fail; exit 3'"

[[shard]]
name = "slow"
command = ["sh", "-c", "echo sleeping; sleep 30"]
"""


def _containers(client, project):
    return client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project.name}"})


def test_four_shards_give_pass_pass_fail_timeout(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))

    result = project.shardrun("run", "--plain")

    assert result.returncode == 1, result.stdout + result.stderr
    report = project.report()
    by_name = {s["name"]: s for s in report["shards"]}
    assert {n: s["status"] for n, s in by_name.items()} == {
        "pass-1": "PASS",
        "pass-2": "PASS",
        "fails": "FAIL",
        "slow": "TIMEOUT",
    }
    assert by_name["fails"]["exit_code"] == 3
    assert 2 <= by_name["slow"]["duration"] < 15
    # The summary table says the same.
    for line in ("pass-1 │ PASS", "fails  │ FAIL", "slow   │ TIMEOUT"):
        assert line in result.stdout
    assert "2 pass, 1 fail, 1 timeout" in result.stdout
    # Each shard's log holds its own output, and only its own.
    logs = {name: Path(s["log"]).read_text() for name, s in by_name.items()}
    assert logs["pass-1"] == "hello from pass-1 of 2\npayload\n"
    assert logs["pass-2"] == "hello from pass-2 of 2\npayload\n"
    assert logs["fails"] == "about to fail\n"
    assert logs["slow"] == "sleeping\n"
    # Nothing of the run is left on the engine.
    run_filter = {"label": f"shardrun.run={report['run_id']}"}
    assert docker_client.containers.list(all=True, filters=run_filter) == []
    # JUnit for CI: two failures (FAIL and TIMEOUT), with the failing log inline.
    junit = (project.root / ".shardrun" / "runs" / report["run_id"] / "junit.xml").read_text()
    assert 'tests="4"' in junit and 'failures="2"' in junit and "about to fail" in junit


def test_plain_output_has_no_escape_codes(project, tmp_path):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    step_summary = tmp_path / "step-summary.md"
    result = project.shardrun(
        "run",
        "--plain",
        "--shard",
        "pass-*",
        "--shard",
        "fails",
        env={"GITHUB_STEP_SUMMARY": str(step_summary)},
    )
    assert result.returncode == 1
    assert step_summary.read_text().startswith(f"## shardrun {project.name}: failed (exit 1)")
    assert "about to fail" in step_summary.read_text()
    assert "\x1b" not in result.stdout + result.stderr
    # timestamped lines for the build and for each shard's start and end
    assert any(
        line[:9].count(":") == 2 and line.split()[1] == "built"
        for line in result.stdout.splitlines()
    )
    assert " start    pass-1 on " in result.stdout
    assert " FAIL     fails in " in result.stdout
    assert set(project.statuses()) == {"pass-1", "pass-2", "fails"}


def test_second_run_builds_nothing_and_saves_nothing(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    first = project.shardrun("run", "--plain", "--shard", "pass-1")
    assert first.returncode == 0, first.stdout + first.stderr
    first_image = project.report()["image_id"]

    second = project.shardrun("run", "--plain", "--shard", "pass-1")

    assert second.returncode == 0, second.stdout + second.stderr
    assert project.report()["image_id"] == first_image
    built = next(ln for ln in second.stdout.splitlines() if ln.split()[1:2] == ["built"])
    cached, total = built.rsplit("(", 1)[1].split(" ")[0].split("/")
    assert cached == total, built  # every step came from the cache
    images = docker_client.images.list(filters={"label": f"{LABEL_PROJECT}={project.name}"})
    assert len(images) == 1  # exactly one image was ever built
    # The build engine is the only worker and holds the image: no tarball is needed.
    assert list((project.root / ".shardrun" / "cache").glob("*.tar")) == []
    assert " image " not in first.stdout + second.stdout


def test_the_tarball_is_saved_once_per_image_and_then_reused(project):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    first = project.shardrun("build", "--plain")
    assert first.returncode == 0, first.stderr
    cache = project.root / ".shardrun" / "cache"
    [tarball] = cache.glob("*.tar")
    before = tarball.stat()
    before_digest = hashlib.sha256(tarball.read_bytes()).hexdigest()

    second = project.shardrun("build", "--plain")

    assert second.returncode == 0
    assert ", saved)" in first.stdout and ", reused)" in second.stdout
    assert list(cache.glob("*.tar")) == [tarball]
    # Not rewritten: the same file (reuse only touches its mtime, for pruning), same bytes.
    assert tarball.stat().st_ino == before.st_ino
    assert hashlib.sha256(tarball.read_bytes()).hexdigest() == before_digest
    assert not list(cache.glob(".*"))  # no temp file left behind


def test_changed_file_builds_a_new_image_and_tarball(project):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    assert project.shardrun("run", "--plain", "--shard", "pass-1").returncode == 0
    first = project.report()["image_id"]
    project.write("payload.txt", "changed\n")

    result = project.shardrun("run", "--plain", "--shard", "pass-1")

    assert result.returncode == 0
    assert project.report()["image_id"] != first
    log = project.report()["shards"][0]["log"]
    assert Path(log).read_text().endswith("changed\n")


def _most_at_once(spans) -> int:
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize("jobs, overlap", [(1, False), (3, True)])
def test_jobs_limits_how_many_run_at_once(project, jobs, overlap):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "nap-{index}"
count = 3
command = "sleep 1"
network = "none"
""",
        ),
    )
    result = project.shardrun("run", "--plain", "--jobs", str(jobs))
    assert result.returncode == 0, result.stdout + result.stderr
    spans = sorted((s["started"], s["finished"]) for s in project.report()["shards"])
    overlapped = any(start < prev_end for (_, prev_end), (start, _) in itertools.pairwise(spans))
    assert overlapped is overlap, spans
    # --jobs is also the slot count of a worker that declares none, whatever its CPUs
    assert _most_at_once(spans) == jobs, spans


def test_broken_dockerfile_exits_3_and_names_the_step(project):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    project.write(
        "Dockerfile.test",
        (
            "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"
            "RUN echo compiling the widgets && echo 'error: widget 7 is bent' && exit 7\n"
        ),
    )

    result = project.shardrun("run", "--plain")

    assert result.returncode == 3, result.stdout + result.stderr
    assert "build failed at step [2/2] RUN echo compiling the widgets" in result.stderr
    assert "error: widget 7 is bent" in result.stderr  # the tail of the step's log
    assert "Traceback" not in result.stderr
    assert list((project.root / ".shardrun" / "cache").iterdir()) == []  # nothing saved


def test_dockerignore_is_honoured(project):
    project.write(".dockerignore", "secret.txt\n")
    project.write("secret.txt", "do not send\n")
    project.write("Dockerfile.test", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY . /ctx/\n")
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "ls"
command = "ls /ctx"
network = "none"
""",
        ),
    )
    result = project.shardrun("run", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    listing = Path(project.report()["shards"][0]["log"]).read_text().split()
    assert "payload.txt" in listing and "secret.txt" not in listing


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_every_container_and_exits_130(project, docker_client, signum):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "long-{index}"
count = 3
command = "sleep 120"
network = "none"
""",
        ),
    )
    proc = project.popen("run", "--plain", "--jobs", "2")
    try:
        wait_for_running(docker_client, project, 2)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert _containers(docker_client, project) == []
    assert set(project.statuses().values()) == {"CANCELLED"}
    assert "Traceback" not in err


def test_terminal_gets_the_live_view(project):
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "tty-check"
command = "sh -c 'echo the last line; sleep 1'"
network = "none"
""",
        ),
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shardrun", "run"],
        cwd=project.root,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=60) == 0
    raw = output.decode(errors="replace")
    assert "\x1b[" in raw  # a live, styled view, not plain lines
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)
    assert "Build  done" in text
    assert "tty-check" in text and "the last line" in text
    assert "1/1 done" in text


def test_build_target_and_args_and_the_build_command(project):
    project.write(
        "Dockerfile.test",
        """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS base
ARG FLAVOUR=plain
RUN echo "flavour=$FLAVOUR" > /flavour.txt
FROM base AS test
RUN echo "stage=test" >> /flavour.txt
FROM base AS other
RUN echo "stage=other" >> /flavour.txt
""",
    )
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "show"
command = "cat /flavour.txt"
network = "none"
""",
            image='target = "test"',
        ),
    )

    built = project.shardrun("build", "--plain", "--build-arg", "FLAVOUR=spicy")

    assert built.returncode == 0, built.stdout + built.stderr
    image_id, tarball = built.stdout.strip().splitlines()[-2:]
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert Path(project.root, tarball).is_file() and image_id[7:] in tarball

    result = project.shardrun("run", "--plain", "--build-arg", "FLAVOUR=spicy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert project.report()["image_id"] == image_id  # run reused what build made
    log = Path(project.report()["shards"][0]["log"]).read_text()
    assert log == "flavour=spicy\nstage=test\n"


def test_retries_run_a_failed_shard_again(project):
    (project.root / "state").mkdir()
    project.write(
        "shards.toml",
        shards_toml(
            project,
            """
[[shard]]
name = "flaky"
network = "none"
volumes = ["./state:/state"]
command = ["sh", "-c", "if [ -e /state/seen ]; then echo second; else touch /state/seen; echo first; exit 1; fi"]
""",
        ),
    )
    without = project.shardrun("run", "--plain")
    assert without.returncode == 1  # a failing test is a result, not a retry
    (project.root / "state" / "seen").unlink()

    with_retry = project.shardrun("run", "--plain", "--retries", "1")

    assert with_retry.returncode == 0, with_retry.stdout + with_retry.stderr
    [shard] = project.report()["shards"]
    assert (shard["status"], shard["attempt"]) == ("PASS", 2)
    assert "requeue  flaky: attempt 2 of 2" in with_retry.stdout
    run_dir = Path(shard["log"]).parent
    assert (run_dir / "flaky.log").read_text() == "first\n"
    assert (run_dir / "flaky.2.log").read_text() == "second\n"


def test_without_an_engine_the_cli_says_so_and_exits_4(project):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))
    result = project.shardrun(
        "run", "--plain", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert result.returncode == 4
    assert "cannot reach the Docker engine at unix:///nonexistent/docker.sock" in result.stderr
    assert "Traceback" not in result.stderr


def test_repro_runs_one_shard_attached_and_prints_its_docker_run(project, docker_client):
    project.write("shards.toml", shards_toml(project, FOUR_SHARDS))

    failing = project.shardrun("repro", "fails")

    assert failing.returncode == 3, failing.stdout + failing.stderr  # the shard's own code
    assert "fails has not run yet; building from the current sources" in failing.stderr
    assert failing.stdout == "about to fail\n"  # the shard's own output, on our stdout
    command = next(ln for ln in failing.stderr.splitlines() if ln.startswith("$ docker "))
    assert "--label shardrun.shard=fails" in command and "--network none" in command
    assert command.endswith("sh -c 'echo about to fail; exit 3'")
    assert "shardrun: fails failed (exit 3)" in failing.stderr

    passing = project.shardrun("repro", "pass-2")
    assert passing.returncode == 0
    assert passing.stdout == "hello from pass-2 of 2\npayload\n"
    assert _containers(docker_client, project) == []

    unknown = project.shardrun("repro", "pass2")
    assert unknown.returncode == 2
    assert "did you mean pass-2" in unknown.stderr
