"""shardrun.config under fuzzed input: every document either loads or fails with one line.

Host-only: the test image has only pytest and rich, not hypothesis. A crash here (a
TypeError, an OverflowError, a RecursionError, a hang) is a bug in config.py to fix there,
never a reason to catch more in the test.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shardrun.config import load as config
from shardrun.config.spec import Config
from shardrun.model.errors import ConfigError
from shardrun.model.shard import RunOptions, Shard
from shardrun.plan import expand as plan

FUZZ = settings(
    max_examples=500,
    deadline=None,
    # Documents are large by design; generation time is not what is under test.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

RUN_KEYS = [f.name.replace("_", "-") for f in fields(RunOptions)]
SCHEMA_KEYS = [
    *("project", "image", "defaults", "shard", "worker", "timings", "split", "required"),
    *("dockerfile", "context", "target", "build-args", "tag", "builder"),
    *("name", "count", "host", "slots", "volumes"),
    *RUN_KEYS,
]

keys = st.sampled_from(SCHEMA_KEYS) | st.text(max_size=12)
scalars = st.one_of(
    st.text(max_size=40),
    st.integers(),
    st.sampled_from([0, -1, 2**63, 10**30, 10**400]),  # TOML text holds any size
    st.floats(),  # inf, -inf and nan included
    st.booleans(),
    st.datetimes(timezones=st.none() | st.just(dt.UTC)),
    st.dates(),
    st.times(),  # TOML local times carry no offset
)
values = scalars | st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=20,
)


def lists_of(*items: Any) -> st.SearchStrategy:
    return st.lists(st.sampled_from(items), max_size=3)


def either(valid: st.SearchStrategy, edges: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly `valid`, sometimes an edge case, now and then anything: a check only runs
    when the ones before it passed, so purely random values would stop at the first key."""
    # Weighted by repeating items: one_of() would drop repeated strategies.
    pick = {"valid": valid, "edge": edges, "any": values}
    return st.sampled_from(["valid"] * 12 + ["edge"] * 2 + ["any"]).flatmap(pick.__getitem__)


NAME_VALUES = ["unit", "u-{index}", "a-{index}-of-{total}", "x" * 98 + "{index}"]
VOLUMES = ["./data:/data:ro", "cache:/c", "/abs:/abs", "~/x:/x"]
BAD_VOLUMES = [
    "/var/run/docker.sock:/var/run/docker.sock",
    "./docker.sock:/s",
    "~nosuchuser/x:/y",
    "/a:/a:rx",
    "/" + "a" * 300 + ":/z",
    "bad name:/b",
    "/x:rel",
    "/x:/c",
    "/l\n:/nl",
]
ENV_NAMES = ["TOKEN", "PATH", "A_1"]
# For each key: mostly valid values, then its edge cases.
BY_KEY = {
    "name": either(st.sampled_from(NAME_VALUES), st.sampled_from(["x" * 101, "a/b", "\n"])),
    "count": either(st.integers(1, 12), st.sampled_from([0, 10**6, 10**30, 10**400])),
    "command": either(
        st.sampled_from(["pytest -q", ["pytest", "-q"], "sh {index}"]),
        st.sampled_from(["echo 'open", "  ", []]),
    ),
    "entrypoint": either(st.sampled_from(["/entry", ["/run-{index}.sh"]]), st.just([1])),
    "env": either(
        st.dictionaries(st.sampled_from(ENV_NAMES), st.text(max_size=5), max_size=3),
        st.dictionaries(st.sampled_from([*ENV_NAMES, "", "\n"]), scalars, max_size=3),
    ),
    "volumes": either(lists_of(*VOLUMES), lists_of(*VOLUMES, *BAD_VOLUMES)),
    "workdir": either(st.just("/src"), st.sampled_from(["src", "/" + "w" * 300])),
    "user": either(st.sampled_from(["1000:1000", 1000]), st.sampled_from([-1, ""])),
    "shm-size": either(
        st.sampled_from(["1g", "512m", 4096]), st.sampled_from(["0", "9" * 400 + "t", 2**70])
    ),
    "memory": either(st.sampled_from(["2GiB", "1.5g"]), st.sampled_from(["1x", 1.5])),
    "security-opt": either(lists_of("seccomp=unconfined", "no-new-privileges"), st.just([1])),
    "network": either(st.sampled_from(["none", "host"]), st.just("")),
    "cpus": either(st.sampled_from([1, 1.5]), st.sampled_from([0, -2, 2**63, 10**400])),
    "timeout": either(
        st.sampled_from(["30m", "1h30m", "500ms", 90]),
        st.sampled_from(["9" * 400 + "s", 10**400, 1e308 * 10]),
    ),
    "secret-env": either(lists_of(*ENV_NAMES), lists_of(*ENV_NAMES, "1BAD", "", "a-b")),
    "docker-socket": either(st.booleans(), st.sampled_from([1, "true"])),
    "reuse": either(st.booleans(), st.sampled_from([1, "true"])),
    "artifacts": either(
        lists_of("/out", "/shots/*.png", "/r/{index}"), lists_of("/out", "relative", "", "/a\0b")
    ),
    "artifacts-when": either(st.sampled_from(["failure", "always"]), st.sampled_from(["x", 1])),
    "artifacts-max": either(st.sampled_from(["200m", 1024]), st.sampled_from(["-1", 0])),
    "junit": either(st.just("/tmp/junit.xml"), st.sampled_from(["junit.xml", "", 3])),
    "dockerfile": either(st.just("Dockerfile.test"), st.sampled_from(["no", "d" * 300, "/"])),
    "context": either(st.sampled_from([".", "/"]), st.sampled_from(["nowhere", "c" * 300])),
    "target": either(st.just("test"), st.just("")),
    "build-args": either(
        st.dictionaries(st.sampled_from(["BASE", "N"]), st.text(max_size=5), max_size=2),
        st.dictionaries(st.sampled_from(["BASE", "N"]), scalars, max_size=2),
    ),
    "tag": either(st.just("demo:latest"), st.just("")),
    "builder": either(st.sampled_from(["box2", "tcp://10.0.0.2:2375"]), st.sampled_from(["", 1])),
    "host": either(
        st.sampled_from(["ssh://ci@box:22", "unix:///s"]),
        st.sampled_from(["tcp://h:notaport", "http://x", "ssh://[::1"]),
    ),
    "slots": either(st.sampled_from([1, 8]), st.sampled_from([0, 1.5])),
    "project": either(st.just("demo"), st.just("")),
    "timings": either(st.just("ci/timings.json"), st.sampled_from(["", 3])),
    "split": either(lists_of("tests/*.py", "**/test_*.py"), lists_of("/abs", "", "../up")),
    "required": either(st.booleans(), st.sampled_from(["yes", 1])),
}
# Now and then one key the schema does not know.
extra_key = st.sampled_from([False] * 7 + [True]).flatmap(
    lambda extra: st.dictionaries(keys, values, min_size=1, max_size=1) if extra else st.just({})
)


def table_of(*names: str, required: tuple[str, ...] = ()) -> st.SearchStrategy:
    schema = st.fixed_dictionaries(
        {k: BY_KEY[k] for k in required},
        optional={k: BY_KEY[k] for k in names if k not in required},
    )
    return st.tuples(extra_key, schema).map(lambda pair: {**pair[0], **pair[1]})


run_tables = table_of(*RUN_KEYS)
shard_tables = table_of("name", "count", "split", *RUN_KEYS, required=("name",))
worker_tables = table_of("name", "context", "host", "slots", "volumes", "required")
image_tables = table_of("dockerfile", "context", "target", "build-args", "tag", "builder")
# Mostly schema-shaped, so most documents get past the first unknown key.
shaped = st.tuples(
    extra_key,
    st.fixed_dictionaries(
        {"shard": either(st.lists(shard_tables, min_size=1, max_size=3), st.just([]))},
        optional={
            "project": BY_KEY["project"],
            "timings": BY_KEY["timings"],
            "image": either(image_tables, st.just([])),
            "defaults": either(run_tables, st.just([])),
            "worker": either(st.lists(worker_tables, max_size=2), st.just({})),
        },
    ),
).map(lambda pair: {**pair[0], **pair[1]})
documents = shaped | st.dictionaries(keys, values, max_size=6)


# ---- a small TOML writer (tomli_w is not a dependency) -------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def toml_key(key: str) -> str:
    return key if _BARE.fullmatch(key) else toml_str(key)


def toml_str(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or not char.isprintable() or ord(char) < 0x20:
            out.append(f"\\U{ord(char):08x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    items = (f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
    return "{ " + ", ".join(items) + " }"


def toml_document(doc: dict) -> str:
    """Scalars first, then [table] and [[array of tables]] sections, as TOML requires."""
    lines, sections = [], []
    for key, value in doc.items():
        if isinstance(value, dict):
            sections.append(f"[{toml_key(key)}]")
            sections += [f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                sections.append(f"[[{toml_key(key)}]]")
                sections += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines + sections) + "\n"


def test_the_writer_writes_toml() -> None:
    doc = {
        "a": 1,
        "s": 'q"\\\n\x00\u2028é',
        "f": [1.5, -0.0, 1e16, math.inf],
        "t": {"k y": dt.datetime(2000, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)},
        "shard": [{"name": "x"}, {"when": dt.time(1, 2, 3, 4), "d": dt.date(1, 1, 1)}],
    }
    assert tomllib.loads(toml_document(doc)) == doc


# ---- the property --------------------------------------------------------------------


def loads_or_fails_in_one_line(call: Callable[[], Any], filename: str) -> Any:
    """The result of `call`, or None when it raised a ConfigError of one line naming the
    file. Any other exception propagates: it is the bug."""
    try:
        return call()
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith(f"{filename}: "), message
        assert "\n" not in message and len(message.splitlines()) == 1, message
        return None


def check_config_and_plan(load: Callable[[], Config], filename: str) -> None:
    loaded = loads_or_fails_in_one_line(load, filename)
    event("config: loaded" if loaded else "config: ConfigError")  # --hypothesis-show-statistics
    if loaded is not None:
        assert isinstance(loaded, Config)
        shards = loads_or_fails_in_one_line(lambda: plan.expand(loaded), filename)
        event("plan: expanded" if shards else "plan: ConfigError")
        if shards is not None:
            names = [s.name for s in shards]
            assert all(isinstance(s, Shard) for s in shards)
            assert len(set(names)) == len(names) and max(map(len, names)) <= 100


def project_folder(tmp: str) -> Path:
    folder = Path(tmp)
    (folder / "Dockerfile.test").write_text("FROM scratch\n")
    return folder


corruptions = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.sampled_from([*list("[]{}\"'=,.#\\\n "), '"""', "'''", "[[", "]]", "\x00"])
        | st.text(max_size=5),
    ),
    max_size=4,
)


def corrupt(text: str, insertions: list[tuple[float, str]]) -> str:
    for where, extra in insertions:
        at = int(where * len(text))
        text = text[:at] + extra + text[at:]
    return text


@FUZZ
@given(
    doc=documents,
    insertions=corruptions,
    raw_bytes=st.sampled_from([False] * 7 + [True]),  # else half the files fail to decode
)
def test_any_shards_toml_loads_or_fails_in_one_line(
    doc: dict, insertions: list[tuple[float, str]], raw_bytes: bool
) -> None:
    text = toml_document(doc)
    if not insertions:
        tomllib.loads(text)  # the writer itself must be right, or we test less than we think
    data = corrupt(text, insertions).encode()
    if raw_bytes:
        data += b"\xff\xfe"  # not UTF-8
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        (folder / "shards.toml").write_bytes(data)
        check_config_and_plan(functools.partial(config.load, cwd=folder), "shards.toml")


@FUZZ
@given(depth=st.integers(0, 3000), kinds=st.lists(st.sampled_from(["[", "{ a = "]), min_size=1))
def test_any_nesting_depth_loads_or_fails_in_one_line(depth: int, kinds: list[str]) -> None:
    """tomllib recurses once per level, with no limit of its own."""
    openers = [kinds[level % len(kinds)] for level in range(depth)]
    closers = "".join("]" if o == "[" else " }" for o in reversed(openers))
    text = f'[[shard]]\nname = "s"\ncommand = {"".join(openers)}"x"{closers}\n'
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        (folder / "shards.toml").write_text(text)
        check_config_and_plan(functools.partial(config.load, cwd=folder), "shards.toml")


@FUZZ
@given(doc=documents)
def test_any_parsed_data_loads_or_fails_in_one_line(doc: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        parse = functools.partial(config.parse, doc, Path("shards.toml"), cwd=folder)
        check_config_and_plan(parse, "shards.toml")


@FUZZ
@given(image=image_tables, defaults=run_tables, shard=shard_tables)
def test_any_image_defaults_and_shard_load_or_fail_in_one_line(
    image: dict, defaults: dict, shard: dict
) -> None:
    """Straight at the tables that hold most of the schema, each one always present."""
    doc = {"image": image, "defaults": defaults, "shard": [shard]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = project_folder(tmp)
        parse = functools.partial(config.parse, doc, Path("shards.toml"), cwd=folder)
        check_config_and_plan(parse, "shards.toml")
