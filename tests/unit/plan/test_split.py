"""shardrun.split: balanced groups of files by recorded times (pure)."""

from __future__ import annotations

import pytest

from shardrun.plan import split


def test_longest_first_into_the_least_loaded_group():
    known = {"a": 5.0, "b": 4.0, "c": 3.0, "d": 3.0, "e": 2.0, "f": 1.0}
    placed = split.groups(list(known), 2, known)
    # a(5) | b(4) | c -> b side (4 < 5) | d -> a side (5 < 7) | e -> b (7 < 8) | f -> a
    assert placed == [["a", "d", "f"], ["b", "c", "e"]]
    assert [sum(known[f] for f in g) for g in placed] == [9.0, 9.0]


def test_unknown_files_count_as_the_mean_of_the_known_ones_and_one_second_with_none():
    assert split.estimates(["a", "b", "new"], {"a": 2.0, "b": 4.0}) == {
        "a": 2.0,
        "b": 4.0,
        "new": 3.0,
    }
    assert split.estimates(["x", "y"], {}) == {"x": split.UNKNOWN, "y": split.UNKNOWN}


def test_equal_times_give_the_same_groups_whatever_the_input_order():
    files = [f"test_{n}.py" for n in "hgfedcba"]
    first = split.groups(files, 3, {})
    assert first == split.groups(list(reversed(files)), 3, {})
    assert first == [
        ["test_a.py", "test_d.py", "test_g.py"],
        ["test_b.py", "test_e.py", "test_h.py"],
        ["test_c.py", "test_f.py"],
    ]


def test_more_groups_than_files_is_an_error():
    with pytest.raises(ValueError, match="2 files cannot make 3 groups"):
        split.groups(["a", "b"], 3, {})


def test_files_expand_as_separate_arguments_wherever_the_word_stands():
    files = ["tests/a b.py", "tests/c.py"]
    assert split.expand_files(("pytest", "-q", "{files}"), files) == (
        "pytest",
        "-q",
        "tests/a b.py",
        "tests/c.py",
    )
    assert split.expand_files(("{files}", "--x"), files) == ("tests/a b.py", "tests/c.py", "--x")
    assert split.expand_files(("sh", "-c", "pytest {files} -x"), files) == (
        "sh",
        "-c",
        "pytest 'tests/a b.py' tests/c.py -x",
    )
    assert split.expand_files(None, files) is None
    assert split.mentions_files(("go", "test", "{files}")) and not split.mentions_files(("x",))


def test_makespan_and_spread():
    known = {"a": 3.0, "b": 1.0, "c": 2.0}
    assert split.makespan([["a"], ["b", "c"]], known, slots=2) == 3.0
    assert split.makespan([["a"], ["b", "c"]], known, slots=1) == 6.0
    assert split.spread(12.0, ["a", "b", "c"], known) == {"a": 6.0, "b": 2.0, "c": 4.0}


def test_globs_match_within_a_folder_and_across_folders_with_two_stars():
    files = [
        "tests/test_a.py",
        "tests/sub/test_b.py",
        "tests/sub/deeper/test_c.py",
        "tests/helper.py",
        "other/test_d.py",
    ]
    assert split.match(files, "tests/test_*.py") == ["tests/test_a.py"]
    assert split.match(files, "tests/**/test_*.py") == [
        "tests/sub/deeper/test_c.py",
        "tests/sub/test_b.py",
        "tests/test_a.py",
    ]
    assert split.match(files, "**/test_?.py") == sorted(f for f in files if "test_" in f)


# ---- in shards.toml ---------------------------------------------------------------------

import textwrap
from pathlib import Path

from shardrun.config.load import load
from shardrun.model.errors import ConfigError
from shardrun.plan.expand import expand

FILES = [f"tests/test_{n}.py" for n in "abcde"]


def planned(tmp_path: Path, shard: str, known=None, files=FILES):
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(textwrap.dedent(shard))
    return expand(load(cwd=tmp_path), files, known or {})


def test_each_shard_of_a_split_gets_its_group_in_both_command_forms(tmp_path: Path):
    shards = planned(
        tmp_path,
        """
        [[shard]]
        name = "t-{index}"
        count = 2
        split = ["tests/test_*.py"]
        command = "pytest -q --shard {index} {files}"
        """,
        known={"tests/test_a.py": 10.0, **dict.fromkeys(FILES[1:], 1.0)},
    )
    assert [s.files for s in shards] == [
        ("tests/test_a.py",),
        ("tests/test_b.py", "tests/test_c.py", "tests/test_d.py", "tests/test_e.py"),
    ]
    assert shards[0].command == ("pytest", "-q", "--shard", "1", "tests/test_a.py")
    listed = planned(
        tmp_path,
        """
        [[shard]]
        name = "t-{index}"
        count = 5
        split = ["tests/test_*.py"]
        command = ["node", "--test", "{files}"]
        """,
    )
    assert [s.command for s in listed][4] == ("node", "--test", "tests/test_e.py")


@pytest.mark.parametrize(
    "shard, message",
    [
        ('command = "pytest {files}"', "{files} in its command, but no split"),
        ('split = ["tests/*.py"]\ncommand = "pytest"', "split, but no {files}"),
        ('split = ["nope/*.py"]\ncommand = "pytest {files}"', '"nope/*.py" matches no file'),
        ('count = 6\nsplit = ["tests/*.py"]\ncommand = "pytest {files}"', "6 groups of 5 files"),
        ('split = ["/abs/*.py"]\ncommand = "pytest {files}"', "is not a path in the build context"),
        ('split = []\ncommand = "pytest {files}"', "split: is empty"),
    ],
)
def test_a_split_that_cannot_be_is_one_line(tmp_path: Path, shard: str, message: str):
    name = 'name = "t-{index}"' if "count" in shard else 'name = "t"'
    with pytest.raises(ConfigError) as info:
        planned(tmp_path, f"[[shard]]\n{name}\n{shard}\n")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_count_slots_makes_one_group_per_slot_or_per_file_when_fewer(tmp_path: Path):
    shard = """
        [[shard]]
        name = "t-{index}"
        count = "slots"
        split = ["tests/*.py"]
        command = "pytest {files}"
        """
    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(textwrap.dedent(shard))
    config = load(cwd=tmp_path)
    assert len(expand(config, FILES, {}, slots=3)) == 3
    assert [s.files for s in expand(config, FILES, {}, slots=8)] == [(f,) for f in FILES]
    with pytest.raises(ConfigError, match='"slots" needs a split'):
        planned(tmp_path, '[[shard]]\nname = "t-{index}"\ncount = "slots"\ncommand = "x"\n')
    with pytest.raises(ConfigError, match="would all be named"):
        planned(
            tmp_path,
            '[[shard]]\nname = "t"\ncount = "slots"\nsplit = ["tests/*.py"]\n'
            'command = "pytest {files}"\n',
        )
