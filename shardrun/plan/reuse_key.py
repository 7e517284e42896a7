"""The key a passed shard is recorded under, so that a later run on the same content can
report it as passed instead of running it again (issue 27). Pure.

The key holds the image's content, never its ID: an identical rebuild on another machine
(another builder, another store, another creation time) gets a new ID but the same
layers and config, so it still matches. Beside the content, every run option of the
shard (its command, env, volumes, timeout, network, a split group's files...), a
digest of each secret it is given, and KEY_VERSION, raised whenever what goes into the
key changes meaning.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from shardrun.model.image_ref import chain_ids
from shardrun.model.shard import Shard, to_json

KEY_VERSION = 1


class Malformed(ValueError):
    """What makes an image's inspect or config no content to key by, as a phrase."""


# The parts of an image's config that change what a container runs or how; the rest
# (labels, exposed ports, healthchecks, history, Created) do not change a test's result.
_RUN_CONFIG = ("Env", "Entrypoint", "Cmd", "WorkingDir", "User")
_LISTS = ("Env", "Entrypoint", "Cmd")
# A layer's diff ID as the OCI image spec writes a digest: algorithm, ":", encoded hash.
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{1,256}")


def content_of_inspect(inspect: Mapping) -> str:
    """The content of an image, from the engine's image inspect (`RootFS.Layers`, `Config`).
    ValueError, one phrase, if it has no such layers or a part is not what it should be."""
    rootfs = _mapping(_mapping(inspect, "the image inspect").get("RootFS"), "RootFS")
    return _content(rootfs.get("Layers"), "RootFS.Layers", inspect.get("Config"), "Config")


def content_of_config(config: Mapping) -> str:
    """The content of an image, from its config blob (as an image archive holds it:
    `rootfs.diff_ids`, `config`). The same value as content_of_inspect of that image."""
    rootfs = _mapping(_mapping(config, "the image config").get("rootfs"), "rootfs")
    return _content(rootfs.get("diff_ids"), "rootfs.diff_ids", config.get("config"), "config")


def _content(layers: object, layers_at: str, run_config: object, config_at: str) -> str:
    if not isinstance(layers, list):
        raise Malformed(f"{layers_at} is {_kind(layers)}, not a list of layers")
    for i, layer in enumerate(layers):
        if not isinstance(layer, str) or not _DIGEST.fullmatch(layer):
            raise Malformed(f"{layers_at}[{i}] is {_kind(layer)}, not a layer digest")
    chains = chain_ids(layers)
    content = {
        "chain": chains[-1] if chains else None,  # an image of no layers: FROM scratch
        "config": _run_config(run_config, config_at),
    }
    return _digest(content)


def _run_config(config: object, where: str) -> dict[str, Any]:
    """The config's run fields, missing and null made the same as empty: the engine's
    inspect writes null where an image archive's config leaves the key out."""
    if config is None:
        config = {}
    config = _mapping(config, where)
    fields: dict[str, Any] = {}
    for name in _RUN_CONFIG:
        value = config.get(name)
        at = f"{where}.{name}"
        if name in _LISTS:
            value = [] if value is None else value
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise Malformed(f"{at} is {_kind(value)}, not a list of strings")
        else:
            value = "" if value is None else value
            if not isinstance(value, str):
                raise Malformed(f"{at} is {_kind(value)}, not a string")
        fields[name] = value
    return fields


def _mapping(value: object, where: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise Malformed(f"{where} is {_kind(value)}, not an object")
    return value


def _kind(value: object) -> str:
    if value is None:
        return "missing"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def eligible(shard: Shard, worker_volumes: bool = False) -> bool:
    """Whether a pass of `shard` may be recorded and reused: it asks for it (`reuse`, its
    own or from [defaults]); and when it reads inputs the key cannot see (a host path
    bound in, the Docker engine, or any volume the run's workers add of their own:
    `worker_volumes`), only if its own [[shard]] table asks (`reuse_own`)."""
    if not shard.reuse:
        return False
    if shard.reuse_own:
        return True
    reaches_out = shard.docker_socket or any(v.is_bind or v.gives_engine for v in shard.volumes)
    return not (reaches_out or worker_volumes)


def shard_key(shard: Shard, content: str, secrets: Mapping[str, str]) -> str:
    """The key of `shard` run on an image of `content` (content_of_inspect/_config), with
    the values of its secret-env names in `secrets` (a name missing there keys as unset).

    The shard's name is not in it: two shards that do identical work (the same command,
    options and files on the same content) would pass or fail alike, and a renamed shard
    is the same test. `reuse` is not in it either: asking for reuse changes no result.
    """
    options = to_json(shard)
    del options["name"], options["reuse"]
    key = {
        "version": KEY_VERSION,
        "content": content,
        "options": options,
        "secrets": {
            name: None if name not in secrets else _secret_digest(name, secrets[name], content)
            for name in shard.secret_env
        },
    }
    return _digest(key)


@functools.lru_cache(maxsize=256)
def _secret_digest(name: str, value: str, content: str) -> str:
    """What the key holds of a secret's value. The record travels (a CI cache, an artifact
    anyone with read access downloads), and a plain hash of a short or guessable token
    is undone by trying candidates at billions a second. scrypt makes each guess cost
    ~50 ms and 16 MB, and the salt (the name and the image content) makes every guess
    good for one name on one image only, so no table computed beforehand helps. Cached:
    every shard of a run shares the same few secrets and content, and each costs that
    once, not once per shard."""
    salt = b"shardrun-reuse-key/" + _bytes(name) + _bytes(content)
    return hashlib.scrypt(_bytes(value), salt=salt, n=2**14, r=8, p=1, dklen=32).hex()


def _bytes(text: str) -> bytes:
    # A value read from the environment may hold bytes that are not UTF-8 (Python gives
    # them as lone surrogates): encoded one to one, never an error.
    return text.encode("utf-8", "surrogatepass")


def _digest(value: object) -> str:
    # Canonical: sorted keys, no whitespace, so equal values give equal bytes everywhere.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
