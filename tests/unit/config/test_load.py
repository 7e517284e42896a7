"""shardrun.config: reading shards.toml and the one-line error for every bad input."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from shardrun.model.shard import Volume
from shardrun.model.values import parse_duration, parse_size

MINIMAL = '[[shard]]\nname = "unit"\ncommand = "pytest -q"\n'


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder whose default Dockerfile exists, so only the TOML is under test."""
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    return tmp_path


def write(folder: Path, text: str, name: str = "shards.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def load_text(folder: Path, text: str):
    write(folder, text)
    return load(cwd=folder)


def error_of(folder: Path, text: str) -> str:
    write(folder, text)
    with pytest.raises(ConfigError) as info:
        load(cwd=folder)
    message = str(info.value)
    assert "\n" not in message
    return message


# ---- a valid file --------------------------------------------------------------------


def test_full_file_is_read_into_dataclasses(project: Path) -> None:
    (project / "data").mkdir()
    config = load_text(
        project,
        """
        project = "demo"
        [image]
        target = "test"
        tag = "demo-test:latest"
        build-args = { BASE = "python:3.12", N = 3, DEBUG = true }
        [defaults]
        command = ["pytest", "-q"]
        env = { A = "1", B = 2, EMPTY = "" }
        volumes = ["./data:/data:ro", "cache:/root/.cache"]
        workdir = "/src"
        user = 1000
        shm-size = "1g"
        security-opt = ["seccomp=unconfined"]
        network = "none"
        cpus = 1.5
        memory = "2GiB"
        timeout = "30m"
        [[shard]]
        name = "unit-{index}"
        count = 4
        command = "pytest --shard {index}/{total} -k 'not slow'"
        [[worker]]
        name = "box2"
        host = "ssh://ci@box2:2222"
        slots = 8
        """,
    )
    assert config.path == project / "shards.toml"
    assert config.root == project
    assert config.project == "demo"
    assert config.image.dockerfile == project / "Dockerfile.test"
    assert config.image.context == project
    assert config.image.target == "test"
    assert dict(config.image.build_args) == {"BASE": "python:3.12", "N": "3", "DEBUG": "true"}
    d = config.defaults
    assert d.command == ("pytest", "-q")
    assert dict(d.env) == {"A": "1", "B": "2", "EMPTY": ""}
    assert d.volumes == (
        Volume(str(project / "data"), "/data", read_only=True),
        Volume("cache", "/root/.cache"),
    )
    assert [v.is_bind for v in d.volumes] == [True, False]
    assert (d.workdir, d.user, d.network) == ("/src", "1000", "none")
    assert (d.shm_size, d.memory) == (1024**3, 2 * 1024**3)
    assert d.security_opt == ("seccomp=unconfined",)
    assert (d.cpus, d.timeout) == (1.5, 1800.0)
    (shard,) = config.shards
    assert (shard.name, shard.count) == ("unit-{index}", 4)
    assert shard.options.command == ("pytest", "--shard", "{index}/{total}", "-k", "not slow")
    assert shard.options.env == {} and shard.options.timeout is None
    assert shard.names == ("unit-1", "unit-2", "unit-3", "unit-4")
    (worker,) = config.workers
    assert (worker.name, worker.context, worker.host, worker.slots) == (
        "box2",
        None,
        "ssh://ci@box2:2222",
        8,
    )


def test_defaults_when_keys_are_absent(project: Path) -> None:
    config = load_text(project, MINIMAL)
    assert config.project == project.name
    assert config.image.target is None and config.image.tag is None
    assert config.defaults.command is None and config.defaults.volumes == ()
    assert config.shards[0].count is None and config.shards[0].names == ("unit",)
    assert config.workers == ()


def test_config_is_frozen_and_hashable(project: Path) -> None:
    config = load_text(project, MINIMAL + 'env = { A = "1" }\n')
    with pytest.raises(TypeError):
        config.shards[0].options.env["A"] = "2"  # type: ignore[index]
    assert hash(config) == hash(load(cwd=project))


def test_relative_image_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "ci"
    (sub / "ctx").mkdir(parents=True)
    (sub / "Dockerfile").write_text("FROM scratch\n")
    write(sub, '[image]\ndockerfile = "Dockerfile"\ncontext = "ctx"\n' + MINIMAL)
    config = load(Path("ci/shards.toml"), cwd=tmp_path)
    assert config.image.dockerfile == sub / "Dockerfile"
    assert config.image.context == sub / "ctx"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/abs:/x", Volume("/abs", "/x")),
        ("/abs:/x:rw", Volume("/abs", "/x")),
        (".:/src:ro", Volume("{root}", "/src", read_only=True)),
        ("../up:/up", Volume("{parent}/up", "/up")),
        ("~/cache:/c", Volume("{home}/cache", "/c")),
        ("my_vol-1.x:/v", Volume("my_vol-1.x", "/v")),
    ],
)
def test_volume_syntax(project: Path, spec: str, expected: Volume) -> None:
    config = load_text(project, f'[defaults]\nvolumes = ["{spec}"]\n' + MINIMAL)
    subs = {"root": str(project), "parent": str(project.parent), "home": str(Path.home())}
    assert config.defaults.volumes == (
        Volume(expected.source.format(**subs), expected.target, expected.read_only),
    )


# ---- discovery -----------------------------------------------------------------------


def test_pyproject_tool_table_is_found_when_there_is_no_shards_toml(project: Path) -> None:
    write(
        project, '[project]\nname = "x"\n[[tool.shardrun.shard]]\nname = "py"\n', "pyproject.toml"
    )
    config = load(cwd=project)
    assert config.path == project / "pyproject.toml"
    assert config.shards[0].name == "py"


def test_shards_toml_wins_over_pyproject(project: Path) -> None:
    write(project, '[[tool.shardrun.shard]]\nname = "py"\n', "pyproject.toml")
    write(project, MINIMAL)
    assert load(cwd=project).shards[0].name == "unit"


def test_pyproject_errors_carry_the_tool_prefix(project: Path) -> None:
    write(project, '[[tool.shardrun.shard]]\nname = "py"\ncount = 0\n', "pyproject.toml")
    with pytest.raises(ConfigError, match=r'^pyproject.toml: tool.shardrun.shard\[1\] \("py"\)'):
        load(cwd=project)


def test_pyproject_without_tool_table_is_not_a_config(project: Path) -> None:
    write(project, '[project]\nname = "x"\n', "pyproject.toml")
    with pytest.raises(ConfigError, match=r"neither shards.toml nor .*--config"):
        load(cwd=project)
    with pytest.raises(ConfigError, match=r"^pyproject.toml: tool.shardrun: no such table"):
        load(Path("pyproject.toml"), cwd=project)


def test_nothing_found_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"create shards.toml here, or pass --config"):
        load(cwd=tmp_path)


def test_explicit_path_outside_cwd_is_named_by_its_full_path(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    path = write(project, MINIMAL + "count = -1\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: shard"):
        load(path, cwd=elsewhere)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^nope.toml: cannot read the file \(No such file"):
        load(Path("nope.toml"), cwd=tmp_path)


def test_invalid_toml_names_file_and_line(project: Path) -> None:
    message = error_of(project, '[[shard]]\nname = "unit\n')
    assert message.startswith("shards.toml: invalid TOML: ")
    assert "line 2" in message


@pytest.mark.parametrize(
    "value",
    ["[" * 2000 + "]" * 2000, "{ a = " * 2000 + "1" + " }" * 2000],
    ids=["arrays", "inline-tables"],
)
def test_a_document_nested_too_deeply_is_an_error_not_a_crash(project: Path, value: str) -> None:
    # tomllib recurses once per level and would raise RecursionError.
    assert error_of(project, MINIMAL + f"x = {value}\n") == (
        "shards.toml: invalid TOML: the document is nested too deeply to read; "
        "nest arrays and inline tables a few levels deep at most"
    )


# ---- validation errors ---------------------------------------------------------------

BAD = [
    pytest.param(
        MINIMAL + "comand = 'x'\n",
        'shards.toml: shard[1] ("unit").comand: unknown key; did you mean "command"?',
        id="unknown-key-suggestion",
    ),
    pytest.param(
        "[defaults]\nshm_size = '1g'\n" + MINIMAL,
        'shards.toml: defaults.shm_size: unknown key; did you mean "shm-size"?',
        id="underscore-key",
    ),
    pytest.param(
        "[image]\nzzz = 1\n" + MINIMAL,
        "shards.toml: image.zzz: unknown key; valid keys: dockerfile, context,",
        id="unknown-key-no-match",
    ),
    pytest.param(
        "shards = 1\n" + MINIMAL,
        'shards.toml: shards: unknown key; did you mean "shard"?',
        id="unknown-top-level",
    ),
    pytest.param(
        MINIMAL + "count = true\n",
        'shards.toml: shard[1] ("unit").count: expected a whole number, got true;',
        id="bool-is-not-int",
    ),
    pytest.param(
        MINIMAL + "count = '4'\n",
        'shards.toml: shard[1] ("unit").count: expected a whole number, got "4"; '
        "write e.g. count = 4",
        id="count-string",
    ),
    pytest.param(
        MINIMAL + "count = 0\n",
        'shards.toml: shard[1] ("unit").count: 0 is not positive; use a number >= 1',
        id="count-zero",
    ),
    pytest.param(
        MINIMAL + "count = 2\n",
        'shards.toml: shard[1] ("unit").count: 2 shards would all be named "unit"; '
        'put {index} in the name, e.g. name = "unit-{index}"',
        id="count-without-index",
    ),
    pytest.param(
        '[[shard]]\nname = "x"\ncommand = []\n',
        'shards.toml: shard[1] ("x").command: is empty;',
        id="empty-command-list",
    ),
    pytest.param(
        '[[shard]]\nname = "x"\ncommand = "  "\n',
        'shards.toml: shard[1] ("x").command: is empty;',
        id="blank-command-string",
    ),
    pytest.param(
        '[[shard]]\nname = "x"\ncommand = ["pytest", 3]\n',
        'shards.toml: shard[1] ("x").command[2]: expected a string, got 3; quote it',
        id="non-string-item",
    ),
    pytest.param(
        '[[shard]]\nname = "x"\ncommand = "echo \'unclosed"\n',
        'shards.toml: shard[1] ("x").command: cannot split',
        id="shlex-error",
    ),
    pytest.param(
        '[[shard]]\nname = "x"\nentrypoint = 5\n',
        'shards.toml: shard[1] ("x").entrypoint: expected an array, got 5;',
        id="entrypoint-type",
    ),
    pytest.param(
        '[[shard]]\nname = "a"\n[[shard]]\nname = "a"\n',
        'shards.toml: shard[2] ("a"): name "a" is also used by shard[1] ("a"); '
        "make each name unique",
        id="duplicate-names",
    ),
    pytest.param(
        '[[shard]]\nname = "unit-{index}"\ncount = 2\n[[shard]]\nname = "unit-1"\n',
        'shards.toml: shard[2] ("unit-1"): name "unit-1" is also used by shard[1] ("unit-{index}")',
        id="duplicate-after-expansion",
    ),
    pytest.param(
        'project = "p"\n',
        "shards.toml: shard: no shards defined; add one:",
        id="no-shards",
    ),
    pytest.param(
        '[shard]\nname = "x"\n',
        "shards.toml: shard: expected an array of tables, got a table; write [[shard]]",
        id="single-bracket-shard",
    ),
    pytest.param(
        "[[shard]]\ncommand = 'x'\n",
        "shards.toml: shard[1].name: missing;",
        id="missing-name",
    ),
    pytest.param(
        "[[shard]]\nnmae = 'unit'\n",
        'shards.toml: shard[1].nmae: unknown key; did you mean "name"?',
        id="misspelled-name-key",
    ),
    pytest.param(
        '[[shard]]\nname = ""\n',
        "shards.toml: shard[1].name: is empty;",
        id="empty-name",
    ),
    pytest.param(
        '[[shard]]\nname = "unit/{i}"\n',
        'shards.toml: shard[1].name: "unit/{i}" is not a valid shard name;',
        id="bad-name-chars",
    ),
    pytest.param(
        '[[shard]]\nname = ".."\n',
        'shards.toml: shard[1].name: ".." is not a valid shard name;',
        id="dot-dot-name",
    ),
    pytest.param(
        MINIMAL + "timeout = '5 minutes'\n",
        'shards.toml: shard[1] ("unit").timeout: "5 minutes" is not a duration; '
        'use e.g. "90s", "30m", "1h30m" or a number of seconds',
        id="bad-duration",
    ),
    pytest.param(
        "[defaults]\ntimeout = -3\n" + MINIMAL,
        "shards.toml: defaults.timeout: -3 is not a positive duration;",
        id="negative-timeout",
    ),
    pytest.param(
        "[defaults]\nmemory = '2 gigs'\n" + MINIMAL,
        'shards.toml: defaults.memory: "2 gigs" is not a size; use e.g. "512m"',
        id="bad-size",
    ),
    pytest.param(
        "[defaults]\ncpus = 0\n" + MINIMAL,
        "shards.toml: defaults.cpus: 0 is not positive; use a number > 0",
        id="zero-cpus",
    ),
    pytest.param(
        "[defaults]\ncpus = '2'\n" + MINIMAL,
        'shards.toml: defaults.cpus: expected a number, got "2";',
        id="cpus-string",
    ),
    pytest.param(
        "[defaults]\nworkdir = 'src'\n" + MINIMAL,
        'shards.toml: defaults.workdir: "src" is not absolute;',
        id="relative-workdir",
    ),
    pytest.param(
        "[defaults]\nenv = { A = [1] }\n" + MINIMAL,
        "shards.toml: defaults.env.A: expected a string, got an array;",
        id="env-value-type",
    ),
    pytest.param(
        "[defaults]\nenv = ['A=1']\n" + MINIMAL,
        "shards.toml: defaults.env: expected a table, got an array;",
        id="env-type",
    ),
    pytest.param(
        "[image]\nbuild-args = { FOO = { x = 1 } }\n" + MINIMAL,
        "shards.toml: image.build-args.FOO: expected a string, got a table;",
        id="build-arg-type",
    ),
    pytest.param(
        "defaults = 3\n" + MINIMAL,
        "shards.toml: defaults: expected a table, got 3;",
        id="defaults-type",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['data']\n" + MINIMAL,
        'shards.toml: defaults.volumes[1]: "data" is not a volume; write SOURCE:TARGET[:ro|rw]',
        id="volume-no-target",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['./a:/a:rx']\n" + MINIMAL,
        'shards.toml: defaults.volumes[1]: "./a:/a:rx" is not a volume;',
        id="volume-bad-mode",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['/a:/ok', './a:rel']\n" + MINIMAL,
        'shards.toml: defaults.volumes[2]: target "rel" is not an absolute container path;',
        id="volume-relative-target",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['data dir:/d']\n" + MINIMAL,
        'shards.toml: defaults.volumes[1]: "data dir" is neither a host path nor a volume name;',
        id="volume-bad-name",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['/a:/d', 'v1:/d']\n" + MINIMAL,
        'shards.toml: defaults.volumes[2]: target "/d" is also used by defaults.volumes[1];',
        id="volume-duplicate-target",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\nname = 'w'\n",
        "shards.toml: worker[1]: needs exactly one of context and host;",
        id="worker-neither",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\nhost = 'ssh://b'\n",
        "shards.toml: worker[1]: needs exactly one of context and host;",
        id="worker-both",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\nhost = 'http://box:2375'\n",
        'shards.toml: worker[1].host: "http://box:2375" is not a docker host URL; use unix://',
        id="worker-bad-scheme",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\nhost = 'tcp://box:notaport'\n",
        'shards.toml: worker[1].host: "tcp://box:notaport" is not a docker host URL;',
        id="worker-bad-port",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\nslots = 0\n",
        "shards.toml: worker[1].slots: 0 is not positive;",
        id="worker-zero-slots",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\nslots = 1.5\n",
        "shards.toml: worker[1].slots: expected a whole number, got 1.5;",
        id="worker-float-slots",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\nslots = 257\n",
        "shards.toml: worker[1].slots: 257 is too large; use a number up to 256",
        id="worker-too-many-slots",
    ),
    pytest.param(
        MINIMAL + 'env = { "A\\u0000B" = "x" }\n',
        "shards.toml: shard[1].env.A\\x00B: the key holds a NUL character (\\u0000); remove it",
        id="env-name-nul",
    ),
    pytest.param(
        MINIMAL + 'env = { TOKEN = "a\\u0000b" }\n',
        "shards.toml: shard[1].env.TOKEN: holds a NUL character (\\u0000); remove it",
        id="env-value-nul",
    ),
    pytest.param(
        MINIMAL + 'env = { "" = "x" }\n',
        'shards.toml: shard[1] ("unit").env: "" is not an environment variable name; use a',
        id="env-name-empty",
    ),
    pytest.param(
        '[defaults]\nenv = { "A=B" = "x" }\n' + MINIMAL,
        'shards.toml: defaults.env: "A=B" is not an environment variable name; use a name',
        id="env-name-equals",
    ),
    pytest.param(
        '[[shard]]\nname = "unit"\ncommand = ["sh", "-c", "echo \\u0000"]\n',
        "shards.toml: shard[1].command[3]: holds a NUL character",
        id="command-arg-nul",
    ),
    pytest.param(
        MINIMAL + 'volumes = ["./a:/b", "./x\\u0000:/y"]\n',
        "shards.toml: shard[1].volumes[2]: holds a NUL character",
        id="volume-nul",
    ),
    pytest.param(
        'project = "p\\u0000"\n' + MINIMAL,
        "shards.toml: project: holds a NUL character",
        id="project-label-nul",
    ),
    pytest.param(
        MINIMAL + '[[worker]]\ncontext = "a\\u0000"\n',
        "shards.toml: worker[1].context: holds a NUL character",
        id="worker-context-nul",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\nname = 'w'\ncontext = 'a'\n[[worker]]\nname = 'w'\ncontext = 'b'\n",
        'shards.toml: worker[2]: name "w" is also used by worker[1];',
        id="worker-duplicate-name",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\nvolumes = ['x']\n",
        'shards.toml: worker[1].volumes[1]: "x" is not a volume;',
        id="worker-bad-volume",
    ),
    pytest.param(
        MINIMAL + "[[worker]]\ncontext = 'a'\ncpus = 2\n",
        "shards.toml: worker[1].cpus: unknown key;",
        id="worker-unknown-key",
    ),
    pytest.param(
        '[[shard]]\nname = "' + "x" * 101 + '"\n',
        "shards.toml: shard[1].name: is 101 characters long, over the limit of 100; shorten it",
        id="name-too-long",
    ),
    pytest.param(
        '[[shard]]\nname = "' + "x" * 97 + '-{index}"\ncount = 100\n',
        "shards.toml: shard[1].name: is 101 characters long once {index} and {total} are "
        "filled, over the limit of 100;",
        id="name-too-long-once-counted",
    ),
    pytest.param(
        MINIMAL + "count = 100000\n",
        'shards.toml: shard[1] ("unit").count: 100000 is too large; use a number up to 1000',
        id="count-too-large",
    ),
    pytest.param(
        "[defaults]\nsecret-env = 'TOKEN'\n" + MINIMAL,
        'shards.toml: defaults.secret-env: expected an array, got "TOKEN"; '
        'write e.g. secret-env = ["a", "b"]',
        id="secret-env-type",
    ),
    pytest.param(
        MINIMAL + "secret-env = ['A', 2]\n",
        'shards.toml: shard[1] ("unit").secret-env[2]: expected a string, got 2; quote it',
        id="secret-env-item-type",
    ),
    pytest.param(
        MINIMAL + "secret-env = ['A', '1TOKEN']\n",
        'shards.toml: shard[1] ("unit").secret-env[2]: "1TOKEN" is not an environment '
        'variable name; use letters, digits and "_", not starting with a digit',
        id="secret-env-bad-name",
    ),
    pytest.param(
        "[defaults]\nsecret-env = ['A', 'B', 'A']\n" + MINIMAL,
        'shards.toml: defaults.secret-env[3]: name "A" is also used by defaults.secret-env[1]; '
        "make each name unique",
        id="secret-env-duplicate",
    ),
    pytest.param(
        MINIMAL + "docker-socket = 'yes'\n",
        'shards.toml: shard[1] ("unit").docker-socket: expected true or false, got "yes"; '
        "write e.g. docker-socket = true",
        id="docker-socket-type",
    ),
    # Found by tests/host/test_config_fuzz.py: each of these used to crash.
    pytest.param(
        "[defaults]\ncpus = 1" + "0" * 400 + "\n" + MINIMAL,
        "shards.toml: defaults.cpus: 1" + "0" * 400 + " is too large; use a number up to",
        id="huge-int-cpus",
    ),
    pytest.param(
        "[defaults]\ntimeout = 1" + "0" * 400 + "\n" + MINIMAL,
        "shards.toml: defaults.timeout: 1" + "0" * 400 + " is not a positive duration;",
        id="huge-int-timeout",
    ),
    pytest.param(
        "[defaults]\nshm-size = '" + "9" * 400 + "t'\n" + MINIMAL,
        'shards.toml: defaults.shm-size: "' + "9" * 400 + 't" is too large; '
        "the engine takes sizes below 8 EiB",
        id="huge-size",
    ),
    pytest.param(
        "[defaults]\nmemory = " + str(2**63) + "\n" + MINIMAL,
        f"shards.toml: defaults.memory: {2**63} is too large;",
        id="size-beyond-int64",
    ),
    pytest.param(
        "[defaults]\nvolumes = ['~nosuchuser-shardrun/x:/x']\n" + MINIMAL,
        'shards.toml: defaults.volumes[1]: cannot find the home folder "~nosuchuser-shardrun" '
        "stands for; write the path out",
        id="unknown-home",
    ),
    pytest.param(
        '[image]\ndockerfile = "' + "d" * 300 + '"\n' + MINIMAL,
        "shards.toml: image.dockerfile: ",
        id="dockerfile-name-too-long",
    ),
    pytest.param(
        '"a\\nb" = 1\n' + MINIMAL,
        "shards.toml: a\\nb: unknown key;",
        id="newline-in-key-stays-one-line",
    ),
    pytest.param(
        '[defaults]\nworkdir = "src\\u2028x"\n' + MINIMAL,
        'shards.toml: defaults.workdir: "src\\u2028x" is not absolute;',
        id="line-separator-in-value",
    ),
    pytest.param(
        "project = 3\n" + MINIMAL,
        'shards.toml: project: expected a string, got 3; write e.g. project = "text"',
        id="project-type",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_validation_error_names_file_key_and_fix(project: Path, text: str, expected: str) -> None:
    assert error_of(project, text).startswith(expected)


def test_missing_dockerfile_names_the_resolved_path(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL)
    expected = f"shards.toml: image.dockerfile: {tmp_path / 'Dockerfile.test'} does not exist;"
    assert message.startswith(expected)


def test_a_dockerfile_name_too_long_says_so(project: Path) -> None:
    message = error_of(project, '[image]\ndockerfile = "' + "d" * 300 + '"\n' + MINIMAL)
    assert message.endswith(" cannot be looked up (File name too long); create it or fix the path")


def test_control_characters_in_values_are_escaped(project: Path) -> None:
    message = error_of(project, '[[shard]]\nname = "a\\nb\\u0085c\\td"\n')
    assert message.startswith('shards.toml: shard[1].name: "a\\nb\\x85c\\td" is not a valid')
    assert len(message.splitlines()) == 1


def test_a_name_of_exactly_the_limit_is_fine(project: Path) -> None:
    config = load_text(project, '[[shard]]\nname = "' + "x" * 97 + '-{index}"\ncount = 99\n')
    assert max(len(n) for n in config.shards[0].names) == 100


def test_secret_env_and_docker_socket_are_read(project: Path) -> None:
    config = load_text(
        project,
        """
        [defaults]
        secret-env = ["API_TOKEN", "_X1"]
        docker-socket = true
        [[shard]]
        name = "unit"
        secret-env = []
        docker-socket = false
        """,
    )
    assert config.defaults.secret_env == ("API_TOKEN", "_X1")
    assert config.defaults.docker_socket is True
    assert config.shards[0].options.secret_env == ()
    assert config.shards[0].options.docker_socket is False
    assert load_text(project, MINIMAL).defaults.docker_socket is None


def test_missing_context_names_the_resolved_path(project: Path) -> None:
    message = error_of(project, '[image]\ncontext = "nowhere"\n' + MINIMAL)
    assert message.startswith(f"shards.toml: image.context: {project / 'nowhere'} is not a folder")


# ---- values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("500ms", 0.5),
        ("1m30s", 90),
        (" 2H ", 7200),
        ("45", 45),
        (45, 45),
        (0.25, 0.25),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value, "x") == seconds


@pytest.mark.parametrize("value", ["5 minutes", "", "1h30", "m", "-5s", 0, -1, True, [], "0s"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^f.toml: a.timeout: .* duration; use e.g. \"90s\""):
        parse_duration(value, "f.toml: a.timeout")


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1GiB", 1024**3),
        ("2GB", 2 * 1024**3),
        ("100k", 102400),
        ("100KB", 102400),
        ("64b", 64),
        ("1.5g", 3 * 1024**3 // 2),
        ("4096", 4096),
        (4096, 4096),
    ],
)
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value, "x") == size


@pytest.mark.parametrize("value", ["2 gigs", "1x", "g", "1ib", "0", 0, -5, True, 1.5, ""])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ConfigError, match=r"^f.toml: a.memory: .* size; use e.g. \"512m\""):
        parse_size(value, "f.toml: a.memory")


@pytest.mark.parametrize(
    "host", ["unix:///var/run/docker.sock", "tcp://10.0.0.2:2376", "ssh://ci@box2", "ssh://box:22"]
)
def test_worker_host_urls_accepted(project: Path, host: str) -> None:
    config = load_text(project, MINIMAL + f"[[worker]]\nhost = '{host}'\n")
    assert config.workers[0].host == host and config.workers[0].context is None


def test_a_worker_can_be_required(project: Path) -> None:
    config = load_text(
        project, MINIMAL + "[[worker]]\ncontext = 'a'\nrequired = true\n[[worker]]\ncontext = 'b'\n"
    )
    assert [w.required for w in config.workers] == [True, False]
    message = error_of(project, MINIMAL + "[[worker]]\ncontext = 'a'\nrequired = 'yes'\n")
    assert message.startswith("shards.toml: worker[1].required: ") and "true" in message
