"""shardrun.plan.partition: the plan of a CI matrix, made once by the build job (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shardrun.model.errors import ConfigError
from shardrun.model.shard import Shard
from shardrun.plan import partition, plan_file

IMAGE, CONFIG = "sha256:" + "ab" * 32, "sha256:" + "cd" * 32


def shards(*names: str, files: dict[str, tuple[str, ...]] | None = None) -> list[Shard]:
    return [Shard(name=n, command=("true",), files=(files or {}).get(n, ())) for n in names]


def names(plan: partition.Plan) -> list[list[str]]:
    return [[s.name for s in part] for part in plan.partitions]


def test_partitions_are_disjoint_covering_and_balanced_longest_first():
    times = {"a": 10, "b": 9, "c": 6, "d": 5, "e": 4, "f": 2}
    plan = partition.make(shards(*times), 3, times, {}, IMAGE, CONFIG)

    assert sorted(n for part in names(plan) for n in part) == sorted(times)
    assert names(plan) == [["a", "f"], ["b", "e"], ["c", "d"]]
    assert plan.expected == (12.0, 13.0, 11.0)
    assert max(plan.expected) <= 1.15 * (sum(times.values()) / 3)


def test_the_same_times_give_the_same_plan_whatever_the_order():
    times = {n: 1.0 for n in "abcdefgh"}  # all ties: by name
    one = partition.make(shards(*"abcdefgh"), 3, times, {}, IMAGE, CONFIG)
    two = partition.make(shards(*"hgfedcba"), 3, times, {}, IMAGE, CONFIG)
    assert names(one) == names(two) and one.digest == two.digest


def test_no_partition_is_empty_when_there_is_work_enough_and_extra_ones_are_when_not():
    plan = partition.make(shards("a", "b", "c"), 3, {"a": 100, "b": 1, "c": 1}, {}, IMAGE, CONFIG)
    assert all(names(plan))
    few = partition.make(shards("a", "b"), 4, {}, {}, IMAGE, CONFIG)
    assert sorted(map(len, names(few))) == [0, 0, 1, 1]


def test_the_groups_of_a_split_spread_over_the_partitions_by_their_files_times():
    files = {f"unit-{i}": (f"tests/test_{i}.py",) for i in range(1, 7)}
    file_times = {f"tests/test_{i}.py": float(i) for i in range(1, 7)}
    plan = partition.make(shards(*files, files=files), 2, {}, file_times, IMAGE, CONFIG)
    assert plan.expected == (11.0, 10.0)  # 6+3+2 against 5+4+1


def test_a_plan_round_trips_and_is_refused_for_another_matrix_image_or_config(tmp_path: Path):
    plan = partition.make(shards("a", "b"), 2, {}, {}, IMAGE, CONFIG)
    path = tmp_path / "image.plan.json"
    partition.save(plan, path)
    again = partition.load(path)
    assert names(again) == names(plan) and again.digest == plan.digest

    partition.check(again, 2, CONFIG, path)
    with pytest.raises(ConfigError, match="a plan for 2 partitions, not 3"):
        partition.check(again, 3, CONFIG, path)
    with pytest.raises(ConfigError, match=r"from another shards.toml"):
        partition.check(again, 2, "sha256:" + "00" * 32, path)
    partition.check_image(again.image_id, IMAGE, "image.tar")
    with pytest.raises(ConfigError, match=r"image.tar is image sha256:efefef.*made for image"):
        partition.check_image(again.image_id, "sha256:" + "ef" * 32, "image.tar")


@pytest.mark.parametrize(
    "text",
    [
        '{"schema": "x"}',
        "[]",
        "not json",
        '{"schema": "' + plan_file.SCHEMA + '", "partitions": [[1]]}',
    ],
)
def test_a_damaged_plan_is_one_line_naming_it(tmp_path: Path, text: str):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"plan.json cannot be read as a plan"):
        partition.load(path)


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, (1, 4)),  # GitLab counts from 1
        ({"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}, (1, 3)),
        ({"CIRCLE_NODE_INDEX": "2", "CIRCLE_NODE_TOTAL": "3"}, (3, 3)),
    ],
)
def test_the_partition_comes_from_the_cis_own_variables(environ, expected):
    assert partition.parse_partition(None, environ) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "2/"])
def test_a_bad_partition_is_one_line(text):
    with pytest.raises(ConfigError, match="not a partition K/N"):
        partition.parse_partition(text, {})


def test_the_plan_lies_beside_the_image_file():
    assert partition.beside(Path("out/image.tar.zst")) == Path("out/image.plan.json")
    assert partition.beside(Path("image.tar")) == Path("image.plan.json")


def test_list_shows_a_partitions_shards_with_their_expected_seconds_and_every_makespan(tmp_path):
    from shardrun.plan import listing

    times = {"a": 6.0, "b": 4.0, "c": 3.0, "d": 2.0}
    path = tmp_path / "image.plan.json"
    partition.save(partition.make(shards(*times), 2, times, {}, IMAGE, CONFIG), path)
    plan = partition.load(path)  # the seconds survive the file
    assert plan.seconds == ((6.0, 2.0), (4.0, 3.0))
    one = listing.partition_lines(plan, "image.plan.json", 2)
    assert one[0] == "partition 2/2 of image.plan.json: 2 shards, expected ~7.0s"
    assert [line.split()[:2] for line in one[1:3]] == [["b", "~4.0s"], ["c", "~3.0s"]]
    assert one[-1] == "partitions: 1 ~8.0s, 2 ~7.0s; expected makespan ~8.0s"
    every = listing.partition_lines(plan, "p", None)
    assert [line for line in every if line.startswith("partition ")] == [
        "partition 1/2 of p: 2 shards, expected ~8.0s",
        "partition 2/2 of p: 2 shards, expected ~7.0s",
    ]


def test_list_counts_a_partitions_split_files():
    from shardrun.plan import listing

    files = {"g1": ("t/a.py", "t/b.py"), "g2": ("t/c.py",)}
    plan = partition.make(shards("g1", "g2", files=files), 1, {}, {}, IMAGE, CONFIG)
    head, *rows, _ = listing.partition_lines(plan, "p", 1)
    assert head.startswith("partition 1/1 of p: 2 shards, 3 files")
    assert "t/a.py t/b.py" in rows[0]


def test_where_lpt_alone_ends_late_a_move_or_swap_balances_the_partitions():
    """3 3 2 2 2 over two: LPT gives 7 and 5; the best is 6 and 6."""
    times = {"a": 3.0, "b": 3.0, "c": 2.0, "d": 2.0, "e": 2.0}
    plan = partition.make(shards(*times), 2, times, {}, IMAGE, CONFIG)
    assert sorted(plan.expected) == [6.0, 6.0]
    assert sorted(sorted(p) for p in names(plan)) == [["a", "b"], ["c", "d", "e"]]
    again = partition.make(shards(*reversed(times)), 2, times, {}, IMAGE, CONFIG)
    assert names(again) == names(plan)  # the same times, the same plan


def plan_text(**change) -> str:
    data = {
        "schema": plan_file.SCHEMA,
        "image_id": IMAGE,
        "config": CONFIG,
        "expected": [1.0, 2.0],
        "seconds": [[1.0], [2.0]],
        "partitions": [[{"name": "a", "files": []}], [{"name": "b", "files": ["t/x.py"]}]],
    }
    return json.dumps({**data, **change})


@pytest.mark.parametrize(
    "text, phrase",
    [
        (plan_text(expected=[-1, 2]), "expected holds -1, not seconds from 0 to 1e+07"),
        (plan_text(expected=[1e308, 2]), "expected holds 1e+308"),
        (plan_text(seconds=[[1.0], [1e8]]), "seconds holds 100000000.0"),
        (plan_text(expected=[1, "2"]), 'expected holds "2"'),
        (plan_text().replace("2.0]]", "NaN]]"), "NaN is not a number JSON allows"),
        (plan_text().replace("[1.0, 2.0]", "[1.0, Infinity]"), "Infinity is not a number"),
        (plan_text(expected=[1.0]), "do not add up"),
        (plan_text(seconds=[[1.0, 2.0], [2.0]]), "do not add up"),
        (plan_text(partitions=[]), "not a list of 1 to 1024 partitions"),
        (plan_text(partitions=[[]] * 1025, expected=[0] * 1025), "not a list of 1 to 1024"),
        (plan_text(partitions=[[{"name": "../../tmp/x"}], []]), '"../../tmp/x"} is not a shard'),
        (plan_text(partitions=[[{"name": "a"}], [{"name": "a"}]]), "a shard is in it twice"),
        (
            plan_text(partitions=[[{"name": "a", "files": ["/etc/passwd"]}], []]),
            "not a relative path",
        ),
        (plan_text(partitions=[[{"name": "a", "files": "t"}], []]), '"t" where a list belongs'),
        (plan_text(partitions=[[{"name": "a"}], "b"]), '"b" where a list belongs'),
        (plan_text(image_id=None), "not a digest"),
        (plan_text(config="x" * 500), "not a digest"),
        ('{"a": ' * 50 + "1" + "}" * 50, "nested deeper than 8 levels"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 8 levels"),
        (plan_text(partitions=[[{"name": "a", "timeout": "soon"}], [{"name": "b"}]]), None),
    ],
)
def test_a_plan_of_a_wrong_value_is_one_line_naming_it_and_the_fix(tmp_path, text, phrase):
    path = tmp_path / "image.plan.json"
    path.write_text(text)
    if phrase is None:  # options a plan carries are not read at all
        assert [s.name for s in partition.load(path).partitions[0]] == ["a"]
        return
    with pytest.raises(ConfigError) as info:
        partition.load(path)
    message = str(info.value)
    assert message.startswith(f"{path} cannot be read as a plan (") and phrase in message
    assert message.endswith("write it again with `shardrun build --output FILE --partitions N`")
    assert "\n" not in message


def test_a_plan_too_large_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "image.plan.json"
    with path.open("wb") as f:
        f.truncate(plan_file.PLAN_MAX + 1)  # sparse: no disk, and not JSON either
    with pytest.raises(ConfigError, match=r"32.0 MB, over the 32.0 MB such a file may have"):
        partition.load(path)


def test_a_plan_that_is_a_folder_or_a_fifo_is_refused_at_once(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.plan.json")
    for name, kind in (("fifo.plan.json", "a FIFO"), (".", "")):
        with pytest.raises(ConfigError, match=f"cannot be read as a plan \\({kind}"):
            partition.load(tmp_path / name)


@pytest.mark.parametrize("text", ["1/1025", "1/" + "9" * 5000, "\u00b2/3", "1/\u0663"])
def test_a_partition_beyond_the_largest_matrix_or_not_in_digits_is_one_line(text):
    with pytest.raises(ConfigError, match="not a partition K/N"):
        partition.parse_partition(text, {})


def test_a_ci_variable_in_other_digits_is_one_line():
    with pytest.raises(ConfigError, match="not a partition K/N"):
        partition.parse_partition(None, {"CIRCLE_NODE_INDEX": "\u00b2", "CIRCLE_NODE_TOTAL": "3"})


def test_a_matrix_of_more_than_1024_jobs_is_refused():
    with pytest.raises(ConfigError, match="from 1 to 1024"):
        partition.make(shards("a"), 1025, {}, {}, IMAGE, CONFIG)


def test_expected_on_slots_gives_each_shard_its_recorded_seconds_and_the_slots_gap(tmp_path):
    path = tmp_path / "timings.json"
    planned = shards("a", "new", "g-1", files={"g-1": ("t/test_x.py", "t/test_y.py")})
    assert partition.expected_on_slots(planned, path) == ()  # no file: nothing to expect
    path.write_text(
        json.dumps(
            {
                "durations": {"a": 10.0, "b": 30.0},
                "files": {"t/test_x.py": 4.0, "t/test_y.py": 2.0},
                "slot": {"gap": 0.5},
            }
        )
    )
    # "new" has no record: the mean of the recorded ones; a split group: its files' times
    assert partition.expected_on_slots(planned, path) == (10.5, 20.5, 6.5)


def test_reused_shards_are_in_no_partition_and_round_trip_each_by_its_own_name(tmp_path):
    from shardrun.config.load import load
    from shardrun.state.results_record import Case, Passed

    (tmp_path / "Dockerfile.test").write_text("FROM scratch\n")
    (tmp_path / "shards.toml").write_text(
        '[[shard]]\nname = "u-{index}"\ncount = 3\ncommand = "true"\nreuse = true\n'
    )
    cfg = load(tmp_path / "shards.toml")
    # Shards of identical work share one key, so one record entry stands for both.
    entry = Passed("sha256:" + "ab" * 32, "u-9", "20261208-000000-aaaaaa", 1.0, 2.0, IMAGE)
    entry = Passed(**{**entry.__dict__, "cases": (Case("t", "x", 0.1),)})
    plan = partition.make_for(cfg, 2, IMAGE, [], lambda s: {"u-1": entry, "u-3": entry})

    assert names(plan) == [["u-2"], []]
    assert sorted(p.shard for p in plan.reused) == ["u-1", "u-3"]
    path = tmp_path / "image.plan.json"
    partition.save(plan, path)
    again = partition.load(path)
    assert again.reused == plan.reused and again.digest == plan.digest
    assert again.digest != partition.make(shards("u-2"), 2, {}, {}, IMAGE, again.config).digest
