"""`repro SHARD --run FOLDER --print` of a downloaded run: the report's record decides what
runs inside the container, this machine's shards.toml what reaches outside it (mounts,
the Docker socket, security options, network), whatever the report says (issue 25). The
engine that would look the image up is a stand-in: --print runs nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from shardrun.config.load import load
from shardrun.repro import reproduce as repro

IMAGE = "sha256:" + "cd" * 32
SOCKET = {"source": "/var/run/docker.sock", "target": "/var/run/docker.sock", "read_only": False}
HOSTILE = {
    "command": ["sh", "-c", "echo recorded"],
    "docker_socket": True,
    "volumes": [SOCKET, {"source": "/", "target": "/host", "read_only": False}],
    "security_opt": ["seccomp=unconfined"],
    "network": "host",
}


def downloaded_run(where: Path, name: str, options: dict) -> Path:
    """A CI run's folder, downloaded: a report naming one failed shard."""
    folder = where / "ci-run"
    folder.mkdir()
    entry = {"name": name, "status": "FAIL", "worker": "ci", "options": {"name": name, **options}}
    report = {"run_id": "ci-1", "image_id": IMAGE, "shards": [entry]}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def printed(tmp_path, monkeypatch, capsys, toml: str, name: str, options: dict) -> tuple[str, str]:
    """(the printed `docker run` line, what went to stderr)."""
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(toml)
    cfg = load(tmp_path / "shards.toml")
    folder = downloaded_run(tmp_path, name, options)
    engine = SimpleNamespace(close=lambda: None)
    worker = SimpleNamespace(name="here", engine=engine, endpoint=SimpleNamespace(url=None))
    monkeypatch.setattr(repro, "_recorded_image", lambda recorded, *_: (recorded.image_id, worker))

    def no_build(*_):
        raise AssertionError("a recorded shard whose image is there needs no build")

    request = repro.ReproRequest(cfg, name, run_id=str(folder), print_only=True)
    assert repro.reproduce(request, no_build) == 0
    out, err = capsys.readouterr()
    return out, err


def test_a_report_grants_no_socket_mount_or_network_the_config_does_not(
    tmp_path, monkeypatch, capsys
):
    toml = '[[shard]]\nname = "a"\ncommand = "true"\n'
    line, err = printed(tmp_path, monkeypatch, capsys, toml, "a", HOSTILE)
    assert line.startswith("docker run --rm ") and line.rstrip().endswith(
        f"{IMAGE} sh -c 'echo recorded'"
    )  # what runs inside is the record's
    for granted in ("docker.sock", "/host", "seccomp", "--network", "--volume"):
        assert granted not in line, granted
    assert "as shards.toml has them, not as run ci-run recorded them" in err


def test_the_configs_own_mounts_and_network_are_kept(tmp_path, monkeypatch, capsys):
    toml = (
        '[[shard]]\nname = "a"\ncommand = "true"\nnetwork = "none"\ndocker-socket = true\n'
        'volumes = ["cache:/c", "/var/run/docker.sock:/var/run/docker.sock"]\n'
    )
    line, _ = printed(tmp_path, monkeypatch, capsys, toml, "a", HOSTILE)
    assert "--network none" in line and "cache:/c" in line and "docker.sock" in line
    assert "/host" not in line and "seccomp" not in line


def test_a_group_of_a_slots_split_takes_its_splits_options(tmp_path, monkeypatch, capsys):
    toml = (
        '[[shard]]\nname = "g-{index}"\ncount = "slots"\nsplit = ["t/*.py"]\n'
        'command = "pytest {files}"\nvolumes = ["cache:/c"]\n'
    )
    line, _ = printed(tmp_path, monkeypatch, capsys, toml, "g-7", {**HOSTILE, "files": ["t/a.py"]})
    assert "cache:/c" in line and "docker.sock" not in line and "/host" not in line


def test_a_shard_the_config_does_not_make_gets_nothing_from_outside(tmp_path, monkeypatch, capsys):
    toml = '[[shard]]\nname = "a"\ncommand = "true"\nvolumes = ["cache:/c"]\n'
    line, err = printed(tmp_path, monkeypatch, capsys, toml, "gone", HOSTILE)
    assert "echo recorded" in line
    for granted in ("docker.sock", "/host", "seccomp", "--network", "--volume"):
        assert granted not in line, granted
    assert "none (not in shards.toml)" in err


@pytest.mark.parametrize(
    "options, why",
    [
        ({"volumes": [SOCKET]}, "mounts the Docker socket without docker-socket"),
        ({"name": "b"}, "is of another shard"),
    ],
)
def test_a_record_that_cannot_be_trusted_is_the_configs_shard(
    tmp_path, monkeypatch, capsys, options, why
):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text('[[shard]]\nname = "a"\ncommand = "true"\n')
    cfg = load(tmp_path / "shards.toml")
    folder = downloaded_run(tmp_path, "a", {"command": ["sh", "-c", "echo recorded"]})
    report = json.loads((folder / "report.json").read_text())
    report["shards"][0]["options"].update(options)
    (folder / "report.json").write_text(json.dumps(report))
    engine = SimpleNamespace(close=lambda: None)
    worker = SimpleNamespace(name="here", engine=engine, endpoint=SimpleNamespace(url=None))
    request = repro.ReproRequest(cfg, "a", run_id=str(folder), print_only=True)
    assert repro.reproduce(request, lambda *_: (worker, IMAGE)) == 0
    out, err = capsys.readouterr()
    assert why in err and "building from the current sources" in err
    assert out.rstrip().endswith(f"{IMAGE} true") and "docker.sock" not in out
