"""shardrun.plan.affinity: split groups that keep directories whole where balance allows."""

from __future__ import annotations

import random

import pytest

from shardrun.plan import affinity, split
from shardrun.plan.affinity import Setup


def suite(**dirs: list[float]) -> dict[str, float]:
    """Files and their seconds: tests/<dir>/test_<n>.py for each listed time."""
    return {f"tests/{d}/test_{i}.py": t for d, times in dirs.items() for i, t in enumerate(times)}


def dirs_of(group: list[str]) -> set[str]:
    return {f.rsplit("/", 1)[0] for f in group}


def test_whole_directories_are_placed_when_they_balance():
    times = suite(a=[1, 1, 1, 1], b=[2, 2], c=[1, 1, 1, 1], d=[4])
    groups = affinity.groups(list(times), 4, times, Setup(per_dir=1.0))
    assert sorted(len(dirs_of(g)) for g in groups) == [1, 1, 1, 1]
    assert sorted(affinity.seconds(g, times, Setup(per_dir=1.0)) for g in groups) == [5] * 4


def test_a_directory_too_large_for_one_group_is_cut_into_as_few_parts_as_balance_allows():
    times = suite(big=[1.0] * 12, small=[1.0] * 4)  # 16 s of files, 4 groups of 4
    groups = affinity.groups(list(times), 4, times, Setup(per_dir=0.5))
    parts = [g for g in groups if "tests/big" in dirs_of(g)]
    assert len(parts) == 3  # 12 s of big over groups of about 4.5 s: three parts, not four
    assert ["tests/small"] in [sorted(dirs_of(g)) for g in groups]  # small stays whole
    assert sorted(f for g in groups for f in g) == sorted(times)


def test_file_level_lpt_scatters_what_affinity_keeps_together():
    times = suite(a=[3, 1, 1, 1], b=[3, 1, 1, 1], c=[3, 1, 1, 1], d=[3, 1, 1, 1])
    scattered = split.groups(list(times), 4, times)
    kept = affinity.groups(list(times), 4, times, Setup(per_dir=2.0))
    assert sum(len(dirs_of(g)) for g in scattered) > 4
    assert sum(len(dirs_of(g)) for g in kept) == 4


def test_the_same_times_give_the_same_groups_whatever_the_order():
    times = suite(a=[0.5, 2.0, 1.5], b=[3.0, 0.2], c=[1.0] * 7, d=[0.7, 0.9])
    files = list(times)
    first = affinity.groups(files, 3, times, Setup(1.0, 0.4))
    random.Random(7).shuffle(files)
    assert affinity.groups(files, 3, times, Setup(1.0, 0.4)) == first


def test_split_together_keeps_files_of_other_directories_in_one_group():
    times = {
        "tests/db/test_db_a.py": 1.0,
        "tests/api/test_db_b.py": 1.0,
        "tests/api/test_c.py": 1.0,
        "tests/ui/test_d.py": 1.0,
    }
    together = ("tests/**/*db*",)  # the database tests, wherever they are
    assert affinity.unit_of("tests/api/test_db_b.py", together) == "tests/**/*db*"
    assert affinity.unit_of("tests/api/test_c.py", together) == "tests/api"
    for count in (2, 3):
        groups = affinity.groups(list(times), count, times, Setup(per_dir=1.0), together)
        assert ["tests/api/test_db_b.py", "tests/db/test_db_a.py"] in [g[:2] for g in groups]
    # Never cut, even where cutting would balance better: 2 files of 1 s over 4 groups.
    four = {"x/db_1.py": 1.0, "y/db_2.py": 1.0, "x/t.py": 0.1, "y/t.py": 0.1, "z/t.py": 0.1}
    groups = affinity.groups(list(four), 4, four, Setup(), ("**/db_*",))
    assert ["x/db_1.py", "y/db_2.py"] in groups


def test_no_group_is_ever_empty_and_every_file_is_placed_once():
    times = {"a/t1.py": 10.0, "b/t1.py": 0.5, "b/t2.py": 0.5}  # 2 units, 3 groups
    groups = affinity.groups(list(times), 3, times, Setup(per_dir=1.0))
    assert all(groups) and sorted(f for g in groups for f in g) == sorted(times)
    with pytest.raises(ValueError):
        affinity.groups(list(times), 4, times)


def test_the_makespan_stays_near_the_bound_that_counts_each_setup_once():
    rng = random.Random(3)
    times = {
        f"tests/d{d}/test_{i}.py": round(rng.uniform(0.1, 3.0), 2)
        for d in range(9)
        for i in range(rng.randint(2, 12))
    }
    setup = Setup(base=1.0, per_dir=2.0)
    for count in (2, 3, 4, 6):
        groups = affinity.groups(list(times), count, times, setup)
        bound = setup.base + (sum(times.values()) + 9 * setup.per_dir) / count
        worst = max(affinity.seconds(g, times, setup) for g in groups)
        assert worst <= 1.10 * bound, (count, worst, bound)


def test_describe_names_each_groups_directories_whole_and_cut():
    every = ["t/a/x.py", "t/a/y.py", "t/a/z.py", "t/b/w.py"]
    shown = affinity.describe(["t/a/x.py", "t/b/w.py"], affinity.sizes(every))
    assert shown == "t/a/ (1 of 3), t/b/ (whole, 1)"


def test_only_a_directory_larger_than_a_group_should_be_is_cut():
    """Uneven directories, 4 groups: the small ones fill in whole, the large one is cut."""
    times = suite(
        api=[1.5] * 12,
        db=[1.45] * 9,
        models=[1.47] * 7,
        cli=[1.34] * 5,
        utils=[1.05] * 4,
        web=[1.03] * 3,
    )
    setup = Setup(base=0.4, per_dir=1.0)
    groups = affinity.groups(list(times), 4, times, setup)
    cut = {
        d
        for d in ("api", "db", "models", "cli", "utils", "web")
        if sum(f"tests/{d}" in dirs_of(g) for g in groups) > 1
    }
    assert cut == {"api"}  # 19 s with its setup: more than a quarter of 61.3 s
    bound = setup.base + (sum(times.values()) + 6 * setup.per_dir) / 4
    assert max(affinity.seconds(g, times, setup) for g in groups) <= 1.08 * bound
