"""shardrun.engine.resolve and shardrun.workers.resolve: naming a worker as the docker CLI
would, from a context store on disk and the DOCKER_* variables. No engine is contacted.

Here, not in tests/unit: both modules import docker (and workers imports anyio).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from docker.tls import TLSConfig

from shardrun.config.spec import WorkerSpec
from shardrun.engine import endpoints as engine
from shardrun.engine.endpoints import Endpoint
from shardrun.model.errors import ConfigError
from shardrun.run import workers


class ContextStore:
    """A DOCKER_CONFIG folder laid out as the docker CLI writes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current(None)

    def current(self, name: str | None) -> None:
        config = {"currentContext": name} if name else {}
        (self.root / "config.json").write_text(json.dumps(config))

    def add(self, name: str, host: str, skip_tls_verify: bool = False) -> Path:
        """Add a context; returns its TLS folder (contexts/tls/<id>/docker)."""
        context_id = hashlib.sha256(name.encode()).hexdigest()
        meta = self.root / "contexts" / "meta" / context_id / "meta.json"
        meta.parent.mkdir(parents=True)
        endpoint = {"Host": host, "SkipTLSVerify": skip_tls_verify}
        meta.write_text(
            json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": endpoint}})
        )
        return self.root / "contexts" / "tls" / context_id / "docker"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ContextStore:
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "docker-config"
    root.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(root))
    store = ContextStore(root)
    store.add("box2", "ssh://ci@box2")
    store.add("box3", "tcp://198.18.0.3:2375")
    return store


def cert_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (folder / name).write_text(f"not really {name}\n")
    return folder


# ---- engine.resolve ------------------------------------------------------------------


def test_a_context_name_resolves_to_its_host(store):
    endpoint = engine.resolve("box2")

    assert endpoint == Endpoint(name="box2", url="ssh://ci@box2", tls=False, source="context box2")


def test_an_unknown_context_is_a_config_error_pointing_at_docker_context_ls(store):
    with pytest.raises(ConfigError) as info:
        engine.resolve("nosuch")

    message = str(info.value)
    assert "'nosuch'" in message
    assert "`docker context ls`" in message
    assert "\n" not in message


def test_default_is_the_current_context_of_the_store(store):
    store.current("box2")

    assert engine.resolve("default").url == "ssh://ci@box2"
    assert engine.resolve(None).url == "ssh://ci@box2"


def test_default_without_a_current_context_is_the_local_socket(store):
    endpoint = engine.resolve("default")

    assert endpoint.url == "unix:///var/run/docker.sock"
    assert endpoint.name == "local"
    assert not endpoint.is_remote


def test_docker_host_wins_over_the_current_context(store, monkeypatch):
    store.current("box2")
    monkeypatch.setenv("DOCKER_CONTEXT", "box3")
    monkeypatch.setenv("DOCKER_HOST", "tcp://198.18.0.9:2375")

    endpoint = engine.resolve("default")

    assert (endpoint.url, endpoint.source, endpoint.tls) == (
        "tcp://198.18.0.9:2375",
        "DOCKER_HOST",
        False,
    )


def test_a_named_context_wins_over_docker_host(store, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://198.18.0.9:2375")

    assert engine.resolve("box2").url == "ssh://ci@box2"


def test_docker_context_selects_the_current_context(store, monkeypatch):
    store.current("box2")
    monkeypatch.setenv("DOCKER_CONTEXT", "box3")

    endpoint = engine.resolve(None)

    assert (endpoint.name, endpoint.url) == ("box3", "tcp://198.18.0.3:2375")


def test_docker_context_default_overrides_the_stores_current_context(store, monkeypatch):
    store.current("box2")
    monkeypatch.setenv("DOCKER_CONTEXT", "default")

    assert engine.resolve(None).url == "unix:///var/run/docker.sock"


def test_an_unknown_docker_context_is_a_config_error(store, monkeypatch):
    monkeypatch.setenv("DOCKER_CONTEXT", "gone")

    with pytest.raises(ConfigError, match=r"docker context 'gone' does not exist"):
        engine.resolve(None)


def test_a_current_context_missing_from_the_store_is_a_config_error(store):
    store.current("gone")  # e.g. the context was removed, or DOCKER_CONFIG points elsewhere

    with pytest.raises(ConfigError, match=r"docker context 'gone' does not exist"):
        engine.resolve(None)


def test_a_corrupted_context_is_a_config_error(store):
    meta = store.add("broken", "ssh://x").parents[2] / "meta"
    (meta / hashlib.sha256(b"broken").hexdigest() / "meta.json").write_text("{not json")

    with pytest.raises(ConfigError, match=r"docker context 'broken' cannot be read"):
        engine.resolve("broken")


def test_a_url_resolves_to_itself_with_a_short_name(store):
    assert engine.resolve("ssh://ci@box2") == Endpoint(
        name="ci@box2", url="ssh://ci@box2", tls=False, source="ssh://ci@box2"
    )
    assert engine.resolve("unix:///run/user/1000/docker.sock").name == "docker.sock"
    assert engine.resolve("tcp://198.18.0.2:2375").name == "198.18.0.2:2375"


def test_a_tcp_url_takes_tls_from_docker_cert_path_and_docker_tls_verify(
    store, monkeypatch, tmp_path
):
    certs = cert_folder(tmp_path / "certs")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")

    tls = engine.resolve("tcp://198.18.0.2:2376").tls

    assert isinstance(tls, TLSConfig)
    assert tls.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))
    assert tls.ca_cert == str(certs / "ca.pem")
    assert tls.verify is True


def test_docker_tls_verify_0_keeps_the_client_cert_without_verifying(store, monkeypatch, tmp_path):
    certs = cert_folder(tmp_path / "certs")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(certs))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "0")

    tls = engine.resolve("tcp://198.18.0.2:2376").tls

    assert isinstance(tls, TLSConfig)
    assert tls.cert == (str(certs / "cert.pem"), str(certs / "key.pem"))
    assert tls.verify is False


def test_tls_variables_do_not_apply_to_other_schemes_or_when_unset(store, monkeypatch, tmp_path):
    assert engine.resolve("tcp://198.18.0.2:2375").tls is False

    monkeypatch.setenv("DOCKER_CERT_PATH", str(cert_folder(tmp_path / "certs")))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")

    assert engine.resolve("ssh://ci@box2").tls is False
    assert engine.resolve("unix:///tmp/x.sock").tls is False


def test_missing_tls_certificates_are_a_config_error(store, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "no-certs"))
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")

    with pytest.raises(ConfigError, match=r"DOCKER_CERT_PATH"):
        engine.resolve("tcp://198.18.0.2:2376")


def test_a_tcp_context_with_tls_material_carries_it(store):
    tls_dir = cert_folder(store.add("secure", "tcp://198.18.0.4:2376"))

    tls = engine.resolve("secure").tls

    assert isinstance(tls, TLSConfig)
    assert tls.cert == (str(tls_dir / "cert.pem"), str(tls_dir / "key.pem"))
    assert tls.ca_cert == str(tls_dir / "ca.pem")
    assert tls.verify is True


@pytest.mark.parametrize(
    "url, remote",
    [
        ("unix:///var/run/docker.sock", False),
        ("npipe:////./pipe/docker_engine", False),
        ("tcp://198.18.0.2:2375", True),
        ("ssh://ci@box2", True),
        ("https://box2:2376", True),
    ],
)
def test_endpoint_is_remote_unless_it_is_a_local_socket(url, remote):
    assert Endpoint(name="w", url=url).is_remote is remote


# ---- workers.resolve -----------------------------------------------------------------


def spec(value: str, name: str | None = None) -> WorkerSpec:
    url = "://" in value
    return WorkerSpec(
        name=name, context=None if url else value, host=value if url else None, slots=None
    )


def test_workers_resolve_to_their_endpoints_in_order(store):
    specs = (spec("box2"), spec("tcp://198.18.0.2:2375"), spec("box3", name="fast"))

    resolved = workers.resolve(specs)

    assert [(s, e.url, n) for s, e, n in resolved] == [
        (specs[0], "ssh://ci@box2", "box2"),
        (specs[1], "tcp://198.18.0.2:2375", "198.18.0.2:2375"),
        (specs[2], "tcp://198.18.0.3:2375", "fast"),
    ]


def test_unnamed_workers_with_one_short_name_are_numbered(store):
    specs = (
        spec("unix:///run/a/x"),
        spec("unix:///run/b/x"),
        spec("box2"),
        spec("unix:///run/c/x"),
    )

    assert [name for _, _, name in workers.resolve(specs)] == ["x", "x#2", "box2", "x#3"]


def test_the_same_worker_twice_unnamed_gets_two_names(store):
    names = [name for _, _, name in workers.resolve((spec("box2"), spec("box2")))]

    assert names == ["box2", "box2#2"]


def test_two_workers_given_the_same_name_is_a_config_error(store):
    specs = (spec("box2", name="ci"), spec("box3", name="ci"))

    with pytest.raises(ConfigError, match=r"worker name 'ci' is used twice"):
        workers.resolve(specs)


def test_an_unknown_worker_context_is_a_config_error(store):
    with pytest.raises(ConfigError, match=r"docker context 'nosuch' does not exist"):
        workers.resolve((spec("box2"), spec("nosuch")))


def test_a_generated_name_never_collides_with_a_given_one(store):
    specs = (spec("unix:///run/a/x"), spec("unix:///run/b/x"), spec("box2", name="x#2"))

    names = [name for _, _, name in workers.resolve(specs)]

    assert len(set(names)) == 3
