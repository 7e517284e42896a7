"""shardrun.owner: which containers are orphans, from their labels alone (pure)."""

from __future__ import annotations

import os

from shardrun.model import owner

ME = owner.Owner(host="box", boot="boot-1", pid=4242, started="777")
NOW = 1_000_000.0


def labels(**overrides: str) -> dict[str, str]:
    return {owner.LABEL_RUN: "r", **ME.labels(), **overrides}


def test_the_current_process_is_described_by_its_own_labels():
    me = owner.me()
    assert me.pid == os.getpid()
    assert me.started == owner.process_started(os.getpid())
    assert not owner.is_orphan(me.labels(), "running")


def test_a_live_runners_containers_are_never_orphans_whatever_their_state():
    for state in ("created", "running", "exited", "dead"):
        assert not owner.is_orphan(labels(), state, NOW, ME)


def test_this_pid_with_another_start_time_is_another_process():
    assert owner.is_orphan(labels(**{owner.LABEL_STARTED: "1"}), "running", NOW, ME)


def test_a_dead_pid_on_this_host_and_boot_is_an_orphan():
    assert owner.is_orphan(labels(**{owner.LABEL_PID: "999999999"}), "running", NOW, ME)


def test_another_host_or_boot_is_judged_by_the_deadline_only():
    for other in ({owner.LABEL_HOST: "elsewhere"}, {owner.LABEL_BOOT: "boot-0"}):
        alive = labels(**other, **{owner.LABEL_PID: "999999999"})
        assert not owner.is_orphan(alive, "running", NOW, ME)
        late = {**alive, owner.LABEL_DEADLINE: f"{NOW - 1:.0f}"}
        assert owner.is_orphan(late, "running", NOW, ME)


def test_a_passed_deadline_makes_even_a_live_runners_container_an_orphan():
    assert owner.is_orphan(labels(**{owner.LABEL_DEADLINE: f"{NOW - 1:.0f}"}), "running", NOW, ME)
    assert not owner.is_orphan(
        labels(**{owner.LABEL_DEADLINE: f"{NOW + 1:.0f}"}), "running", NOW, ME
    )


def test_containers_from_before_owner_labels_are_orphans_once_not_running():
    old = {owner.LABEL_RUN: "r", owner.LABEL_PROJECT: "p"}
    assert owner.is_orphan(old, "exited", NOW, ME)
    assert not owner.is_orphan(old, "running", NOW, ME)


def test_a_deadline_is_the_timeout_plus_a_margin_and_none_without_a_timeout():
    assert owner.deadline_label(None) == {}
    assert owner.deadline_label(30, now=NOW) == {
        owner.LABEL_DEADLINE: f"{NOW + 30 + owner.DEADLINE_MARGIN:.0f}"
    }
