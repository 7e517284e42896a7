"""The small state files read as foreign files: .shardrun/image-id (state/latest_image.py,
what `workers` and `clean` read) and .shardrun/cache/blobs.json (distribute/blob_names.py).
Anything but a regular file inside .shardrun of the right shape is no build, or no blob
noted, with one line on stderr, at once (a FIFO never blocks, a huge file is not read);
nothing outside .shardrun is read or written; the next build or save writes it anew.
Through the real CLI, and under hypothesis."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardrun.distribute.artifact import blob_names
from shardrun.distribute.artifact.tarball import latest_image_id, record_latest
from shardrun.state import latest_image
from tests.host.foreign_json import write
from tests.host.test_cli_errors import shardrun

IMAGE = "sha256:" + "ab" * 32
PLANTED = "sha256:" + "7e" * 32  # an ID, and a blob digest: read, it would be used
DIFF = ["sha256:" + c * 64 for c in "0123"]
BLOB = ["sha256:" + c * 64 for c in "abcd"]


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "proj" / ".shardrun"
    (state / "cache").mkdir(parents=True)
    return state


def _outside(path: Path) -> Path:
    """Where a planted file lies: beside the project, out of .shardrun."""
    return next(p for p in path.parents if p.name == ".shardrun").parent.parent / "planted"


def _link_out(text: str) -> Callable[[Path], object]:
    def make(path: Path) -> None:
        _outside(path).write_text(text)
        path.symlink_to(_outside(path))

    return make


def _huge(path: Path) -> None:
    path.touch()
    os.truncate(path, 1 << 40)  # sparse: 1 TB that takes no disk


def stand_ins(outside: str, huge: str) -> list[tuple[Callable[[Path], object], str]]:
    """What may stand where a state file belongs: how to make it, and what the line says."""
    return [
        (os.mkfifo, "a FIFO, not a regular file"),
        (os.mkdir, "a folder, not a regular file"),
        (_link_out(outside), "lies outside"),
        (_huge, huge),
    ]


def the_line(path: Path, capsys, phrase: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and phrase in err and str(path) in err, err
    assert PLANTED not in err


def test_the_image_id_a_build_noted_is_read_back(state: Path, capsys):
    assert latest_image_id(state) is None  # no build yet: nothing to say
    record_latest(state, IMAGE)
    assert latest_image_id(state) == IMAGE
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "make, phrase",
    [
        *stand_ins(PLANTED + "\n", "over the 256 bytes"),
        (lambda p: p.write_text("[" * 100), "not an image ID"),
        (lambda p: p.write_bytes(b"\xff\xfe\x00garbage"), "not an image ID"),
        (lambda p: p.write_text(IMAGE + " rm -rf /"), "not an image ID"),
        (lambda p: p.write_text(IMAGE.upper()), "not an image ID"),
        (lambda p: p.write_text(IMAGE[:-1]), "not an image ID"),
        (lambda p: p.write_text("shardrun/image:latest"), "not an image ID"),
    ],
)
def test_a_broken_image_id_is_no_build_in_one_line_at_once(state: Path, capsys, make, phrase):
    path = state / "image-id"
    make(path)
    began = time.monotonic()
    assert latest_image_id(state) is None
    assert time.monotonic() - began < 1
    the_line(path, capsys, phrase)
    assert latest_image.read(state) is None and capsys.readouterr().err == ""  # once
    if not path.is_dir():
        record_latest(state, IMAGE)  # written anew by the next build, never through a link
        assert latest_image_id(state) == IMAGE
        assert not _outside(path).exists() or PLANTED in _outside(path).read_text()


def test_noted_blobs_are_read_back(state: Path, capsys):
    cache = state / "cache"
    assert blob_names.known(cache, DIFF) == set()
    blob_names.learn(cache, {DIFF[0]: BLOB[0], DIFF[1]: BLOB[1]})
    assert blob_names.known(cache, DIFF[1:]) == {BLOB[1]}
    assert capsys.readouterr().err == ""


def test_only_pairs_of_digests_are_kept(state: Path, capsys):
    cache = state / "cache"
    (cache / "blobs.json").write_text(
        json.dumps(
            {
                DIFF[0]: BLOB[0],
                DIFF[1]: "../../etc/passwd",
                DIFF[2]: 3,
                "../x": BLOB[3],
                DIFF[3]: BLOB[3].upper(),
            }
        )
    )
    assert blob_names.known(cache, [*DIFF, "../x"]) == {BLOB[0]}
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "make, phrase",
    [
        *stand_ins(json.dumps({DIFF[0]: PLANTED}), "over the 8.0 MB"),
        (lambda p: p.write_text("[" * 100_000), "nested deeper than 1 levels"),
        (lambda p: p.write_text(json.dumps({DIFF[0]: {"a": BLOB[0]}})), "nested deeper"),
        (lambda p: p.write_bytes(b"\xff\xfe{garbage"), "not JSON"),
        (lambda p: p.write_text(json.dumps([DIFF[0], BLOB[0]])), "not a JSON object"),
        (lambda p: p.write_text(f'{{"{DIFF[0]}": NaN}}'), "not JSON"),
    ],
)
def test_a_broken_blobs_file_is_none_noted_in_one_line_and_written_anew(
    state: Path, capsys, make, phrase
):
    cache = state / "cache"
    path = cache / "blobs.json"
    make(path)
    began = time.monotonic()
    assert blob_names.known(cache, DIFF) == set()
    assert time.monotonic() - began < 1
    the_line(path, capsys, phrase)
    if path.is_dir():
        return  # a folder in its place is not shardrun's to remove
    blob_names.learn(cache, {DIFF[2]: BLOB[2]})
    assert not path.is_symlink() and json.loads(path.read_text()) == {DIFF[2]: BLOB[2]}
    assert blob_names.known(cache, DIFF) == {BLOB[2]}
    assert not _outside(path).exists() or PLANTED in _outside(path).read_text()  # not written


def _garbage(path: Path) -> None:
    path.write_bytes(b"[[[[\x00\xff" * 1000)


@pytest.mark.parametrize(
    "make", [os.mkfifo, _link_out(PLANTED), _huge, _garbage], ids=["fifo", "link", "huge", "junk"]
)
def test_workers_and_clean_take_a_broken_image_id_for_no_build(state: Path, make):
    make(state / "image-id")
    root = state.parent
    (root / "Dockerfile.test").write_text("FROM scratch\n")
    (root / "shards.toml").write_text('[[shard]]\nname = "a"\ncommand = "true"\n')
    for args, code in ((("workers",), 4), (("clean",), 0)):  # 4: the engine is unreachable
        began = time.monotonic()
        done = shardrun(root, *args)
        assert time.monotonic() - began < 20
        assert done.returncode == code, done.stderr
        ignored = [ln for ln in done.stderr.splitlines() if ln.startswith("shardrun: ignoring")]
        assert len(ignored) == 1 and "image-id" in ignored[0], done.stderr
        assert PLANTED[7:19] not in done.stdout + done.stderr


SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECONDS = 5.0
PAIRS = dict(zip(DIFF, BLOB, strict=True))


def _digest(value: object) -> bool:
    return isinstance(value, str) and latest_image.IMAGE_ID.fullmatch(value) is not None


@SETTINGS
@given(data=st.data())
def test_a_damaged_blobs_file_is_none_or_some_pairs_and_written_anew(tmp_path, capsys, data):
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    write(cache / "blobs.json", data, PAIRS, 8_000_000)
    capsys.readouterr()
    began = time.monotonic()
    found = blob_names.known(cache, [*PAIRS, "../x", ""])
    assert all(_digest(b) for b in found)  # never a path or anything else a file says
    new = {"sha256:" + "9" * 64: "sha256:" + "f" * 64}
    blob_names.learn(cache, new)  # and it is written anew, whole
    assert blob_names.known(cache, new) == set(new.values())
    assert time.monotonic() - began < SECONDS
    assert capsys.readouterr().err.count("\n") <= 1


@SETTINGS
@given(data=st.binary(max_size=300) | st.sampled_from([IMAGE.encode(), IMAGE.encode() + b"\n"]))
def test_a_damaged_image_id_is_an_image_id_or_none(tmp_path, capsys, data):
    (tmp_path / "image-id").write_bytes(data)
    capsys.readouterr()
    began = time.monotonic()
    found = latest_image.read(tmp_path)
    assert found is None or (_digest(found) and found.encode() in data)
    assert time.monotonic() - began < SECONDS
    assert capsys.readouterr().err.count("\n") <= 1
