"""`shardrun repro --print`, the real command on fake engines: the recorded shard on the
recorded image, found on the engine where it ran."""

from __future__ import annotations

from tests.host.cli.conftest import IMAGE, shardrun, write_project


def test_repro_prints_the_run_of_the_recorded_image(docker, tmp_path):
    local = docker.add("local", builds=True)
    write_project(tmp_path, ["a", "b"])
    assert shardrun("run", "--plain").exit_code == 0

    done = shardrun("repro", "b", "--print")

    assert done.exit_code == 0, done.output
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("docker ") and " run " in f" {line} "
    assert "true" in line.split() and "shardrun.shard=b" in line
    assert len(local.called("build")) == 1  # the run's build only: repro built nothing
    assert IMAGE.id[7:19] in done.stderr  # "as it ran in run ... (image sha256:...)"
