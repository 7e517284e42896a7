"""The primitives every reader of a foreign file goes through: regular files only, bounded
size and depth, finite numbers, no path out of its folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shardrun.state import foreign
from shardrun.state.foreign import Refused


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"a": [1, 2.5]}')
    assert foreign.read_json(path, 100, within=tmp_path) == {"a": [1, 2.5]}


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    os.mkfifo(path)
    with pytest.raises(Refused, match="a FIFO, not a regular file"):
        foreign.read_bytes(path, 100)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused(device: str) -> None:
    with pytest.raises(Refused, match="character device"):
        foreign.read_bytes(Path(device), 100)


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Refused, match="a folder"):
        foreign.read_bytes(tmp_path, 100)


def test_a_link_out_of_its_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "report.json").symlink_to(secret)
    with pytest.raises(Refused, match="outside"):
        foreign.read_bytes(folder / "report.json", 100, within=folder)
    # Without a folder to keep to (a path the user gave), the link is the user's own.
    assert foreign.read_bytes(folder / "report.json", 100) == b"s3cret"


def test_a_link_inside_its_folder_is_still_no_regular_file(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("{}")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(Refused, match="symbolic link"):
        foreign.read_bytes(tmp_path / "link", 100, within=tmp_path)


def test_size_is_bounded_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 1001)
    with pytest.raises(Refused, match="over the 1000 bytes"):
        foreign.read_bytes(path, 1000)


def test_depth_is_bounded_without_recursion() -> None:
    with pytest.raises(Refused, match="nested deeper"):
        foreign.parse_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(Refused, match="nested deeper than 3"):
        foreign.parse_json('{"a": {"b": [[1]]}}', depth=3)
    assert foreign.parse_json('{"a": {"b": [1]}}', depth=3)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_non_finite_numbers_are_refused(text: str) -> None:
    with pytest.raises(Refused, match="not JSON"):
        foreign.parse_json(text)


def test_an_overlong_integer_is_refused() -> None:
    with pytest.raises(Refused, match="not JSON"):
        foreign.parse_json("9" * 10_000)


@pytest.mark.parametrize(
    "name", ["/etc/passwd", "../x", "a/../../x", "", "a\nb", "a\x00b", 7, None, "a/" + "b" * 300]
)
def test_relative_names_stay_inside(name: object) -> None:
    with pytest.raises(Refused):
        foreign.relative_name(name)


def test_inside_resolves_links(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to("/etc")
    with pytest.raises(Refused, match="outside"):
        foreign.inside(tmp_path, "out/passwd")
    assert foreign.inside(tmp_path, "a/b") == tmp_path.resolve() / "a" / "b"


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1, 1.0), (True, None), ("1", None), (float("nan"), None), (1e308, None), (-1, None)],
)
def test_number(value: object, expected: float | None) -> None:
    assert foreign.number(value, 0, 1e9) == expected


def test_a_loop_of_links_is_refused_not_a_crash(tmp_path: Path) -> None:
    loop = tmp_path / "timings.json"
    loop.symlink_to(loop)
    with pytest.raises(foreign.Refused, match="loop of symbolic links"):
        foreign.inside(tmp_path, "timings.json")
