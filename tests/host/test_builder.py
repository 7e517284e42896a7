"""The engine that builds: `[image] builder` / `--builder` resolved, and an engine that
cannot build from a context sent over the API refused before anything is sent. On the
host: the workflow and build modules import anyio and docker-py."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.config.spec import Config


def _config_with_builder(tmp_path: Path, builder: str | None) -> Config:
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    image = f'[image]\nbuilder = "{builder}"\n' if builder else ""
    (tmp_path / "shards.toml").write_text(
        image + '[[worker]]\nname = "big"\nhost = "tcp://10.9.9.9:2375"\nslots = 8\n'
        '[[shard]]\nname = "a"\ncommand = "true"\n'
    )
    return load(cwd=tmp_path)


def test_the_builder_is_a_worker_by_name_or_an_engine_url_or_the_current_context(
    tmp_path: Path, monkeypatch
):
    from shardrun.run.connect import builder_endpoint

    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/current.sock")
    spec, endpoint, name = builder_endpoint(_config_with_builder(tmp_path, "big"))
    assert (spec.slots, endpoint.url, name) == (8, "tcp://10.9.9.9:2375", "big")
    _, endpoint, name = builder_endpoint(_config_with_builder(tmp_path, "ssh://ci@box3"))
    assert (endpoint.url, name) == ("ssh://ci@box3", "ci@box3")
    _, endpoint, name = builder_endpoint(_config_with_builder(tmp_path, None))
    assert (endpoint.url, name) == ("unix:///tmp/current.sock", "local")


@pytest.mark.parametrize(
    "version, containerd_store, refused",
    [
        ("26.1.5+dfsg1", True, True),
        ("27.5.1", True, True),
        ("28.0.0", True, False),
        ("29.1.2", True, False),
        ("20.10.24+dfsg1", False, False),
        ("26.1.5", False, False),
    ],
)
def test_a_containerd_store_builder_before_28_is_refused_before_anything_is_sent(
    version: str, containerd_store: bool, refused: bool
):
    from shardrun.image.build import check_builder
    from shardrun.model.errors import BuildError

    if refused:
        with pytest.raises(BuildError, match=r"^the builder w3 \(Docker .*28\.0.*--builder"):
            check_builder("w3", version, containerd_store)
    else:
        check_builder("w3", version, containerd_store)
