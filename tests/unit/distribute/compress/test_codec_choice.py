"""Which codec each worker gets: settings, refusals, measured links, one shared codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from shardrun.distribute.compress.codec_choice import FAST_LINK, MEANINGFUL, Target, choose
from shardrun.distribute.worker_facts import Transfer, WorkerFacts

TCP, SSH, UNIX = "tcp://box:2375", "ssh://ci@box2", "unix:///var/run/docker.sock"
MB = 1_000_000


@pytest.fixture
def facts(tmp_path: Path) -> WorkerFacts:
    return WorkerFacts(tmp_path / "workers.json")


def measured(
    codec: str,
    link_rate: float,
    seconds: float,
    raw: int = 400 * MB,
    wire: int = 200 * MB,
    at: float = 1.0,
) -> Transfer:
    return Transfer(codec, raw, wire, seconds, wire / link_rate, at)


def test_never_measured_remote_workers_compress_and_a_unix_socket_does_not(facts):
    chosen = choose([Target("a", TCP, containerd_store=True), Target("b", UNIX)], facts)
    assert chosen == {"a": "zstd", "b": "none"}


def test_workers_that_compress_share_zstd_only_where_every_one_loads_it(facts):
    both = [Target("a", TCP, containerd_store=True), Target("b", SSH)]
    assert choose(both, facts) == {"a": "gzip", "b": "gzip"}
    stores = [Target("a", TCP, containerd_store=True), Target("b", SSH, containerd_store=True)]
    assert choose(stores, facts) == {"a": "zstd", "b": "zstd"}


def test_a_setting_wins_unless_the_worker_refused_that_codec(facts):
    assert choose([Target("a", UNIX, "gzip"), Target("b", TCP, "none")], facts) == {
        "a": "gzip",
        "b": "none",
    }
    facts.refuse_codec(TCP, "zstd")
    assert choose([Target("a", TCP, "zstd")], facts) == {"a": "none"}
    # An auto worker that refused zstd gets gzip: the others then share gzip too.
    targets = [Target("a", TCP, containerd_store=True), Target("b", SSH, containerd_store=True)]
    assert choose(targets, WorkerFacts(facts.path)) == {"a": "gzip", "b": "gzip"}


def test_a_slow_link_keeps_compressing_and_a_fast_one_is_measured_raw_next(facts):
    facts.record(TCP, measured("gzip", link_rate=12 * MB, seconds=18))
    facts.record(SSH, measured("gzip", link_rate=3 * FAST_LINK, seconds=9))
    chosen = choose([Target("slow", TCP), Target("fast", SSH)], facts)
    assert chosen == {"slow": "gzip", "fast": "none"}


def test_with_both_modes_measured_the_faster_one_is_chosen(facts):
    facts.record(TCP, measured("gzip", link_rate=100 * MB, seconds=9.6))
    facts.record(TCP, measured("none", link_rate=120 * MB, seconds=8.2, wire=400 * MB))
    assert choose([Target("a", TCP)], facts) == {"a": "none"}
    facts.record(TCP, measured("gzip", link_rate=100 * MB, seconds=7.0, at=2.0))
    assert choose([Target("a", TCP)], facts) == {"a": "gzip"}


def test_a_raw_transfer_on_a_slow_link_makes_the_next_one_compress(facts):
    facts.record(TCP, measured("none", link_rate=12 * MB, seconds=40, wire=400 * MB))
    assert choose([Target("a", TCP)], facts) == {"a": "gzip"}


def test_small_transfers_say_nothing_about_the_link(facts):
    # 2 MB vanish into socket buffers at once: as if never measured.
    facts.record(
        TCP, measured("zstd", link_rate=500 * MB, seconds=0.1, raw=20 * MB, wire=MEANINGFUL // 8)
    )
    assert choose([Target("a", TCP, containerd_store=True)], facts) == {"a": "zstd"}


def test_facts_survive_a_reload_and_keep_each_others_keys(facts):
    facts.refuse_thin(SSH)
    facts.record(TCP, measured("zstd", link_rate=12 * MB, seconds=20))
    facts.refuse_codec(TCP, "zstd")
    again = WorkerFacts(facts.path)
    assert not again.allows_thin(SSH)
    assert again.refused_codecs(TCP) == {"zstd"}
    last = again.last_transfer(TCP)
    assert last is not None and (last.codec, last.raw, last.wire) == ("zstd", 400 * MB, 200 * MB)
    assert last.link_rate == pytest.approx(12 * MB, rel=1e-3)  # kept to the millisecond
    assert again.describe(TCP) == "zstd, 12.0 MB/s; zstd refused"
    assert again.describe(UNIX) == ""


def test_a_damaged_facts_file_is_an_empty_memory(tmp_path: Path):
    path = tmp_path / "workers.json"
    path.write_text('{"links": {"tcp://box:2375": {"zstd": {"raw": "x"}}}, "codec_refused": 3}')
    facts = WorkerFacts(path)
    assert facts.transfers(TCP) == {} and facts.refused_codecs(TCP) == set()
    assert choose([Target("a", TCP)], facts) == {"a": "gzip"}
