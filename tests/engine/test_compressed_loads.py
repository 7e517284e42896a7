"""Compressed transfers against real engines behind a shaped link: `tc` on the host side
of w1's and w3's veth pairs (scripts/worker-hosts) makes their tcp:// links 100 Mbit/s.
w1 is dockerd 20.10 on a graph driver (loads gzip, refuses zstd), w3 dockerd 26.1 on the
containerd store (loads both)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import docker
import pytest

from shardrun.model.image_ref import content_tag
from tests.engine.conftest import LABEL_PROJECT, clear_project_from, hosts_script, shards_toml

# Its own bottom layer, so the first load is a full one; /numbers (about 20 MB) compresses
# as ordinary files do.
DOCKERFILE = """\
FROM scratch
COPY unique.txt /unique.txt
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox seq 1 2500000 > /numbers"]
COPY payload.txt /payload.txt
"""

SHARDS = """
[defaults]
network = "none"
[[shard]]
name = "show"
command = ["/bin/busybox", "cat", "/payload.txt"]
"""


def _tc(*args: str) -> None:
    subprocess.run(["tc", "qdisc", *args], check=True, capture_output=True)


@pytest.fixture
def slow_links(hosts):
    for dev in ("shardrun-w1", "shardrun-w3"):
        _tc(
            "replace",
            "dev",
            dev,
            "root",
            "tbf",
            "rate",
            "100mbit",
            "burst",
            "256kb",
            "latency",
            "100ms",
        )
    yield hosts
    for dev in ("shardrun-w1", "shardrun-w3"):
        subprocess.run(["tc", "qdisc", "del", "dev", dev, "root"], check=False, capture_output=True)


@pytest.fixture
def numbers_project(project, slow_links):
    project.write("Dockerfile.test", DOCKERFILE)
    project.write("unique.txt", project.name)
    project.write("payload.txt", "v1\n")
    shutil.copy(shutil.which("busybox") or "/bin/busybox", project.root / "busybox")
    project.write("shards.toml", shards_toml(project, SHARDS))
    yield project
    clear_project_from(
        project, [slow_links["SHARDRUN_TEST_W1_UNIX"], slow_links["SHARDRUN_TEST_W3_UNIX"]]
    )


def _run(project, *workers: str) -> dict:
    args = [a for w in workers for a in ("--worker", w)]
    result = project.shardrun("run", "--plain", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return project.report()


def _log(report: dict) -> str:
    [shard] = report["shards"]
    with open(shard["log"]) as f:
        return f.read()


def _facts(project) -> dict:
    return json.loads((project.root / ".shardrun" / "workers.json").read_text())


def test_a_containerd_store_worker_gets_zstd_a_full_load_then_a_thin_oci_layout(
    numbers_project, hosts
):
    w3 = hosts["SHARDRUN_TEST_W3_TCP"]

    first = _run(numbers_project, w3)

    [worker] = first["workers"]
    assert (worker["load"], worker["codec"]) == ("full", "zstd"), worker
    assert worker["sent"] == worker["full_size"]
    assert worker["wire"] < 0.5 * worker["sent"], worker
    # The image on w3 is the one built: its content tag names an image of the same layers.
    built = docker.from_env().images.get(first["image_id"]).attrs["RootFS"]["Layers"]
    w3_client = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W3_UNIX"])
    on_w3 = w3_client.images.get(content_tag(first["image_id"]))
    assert on_w3.attrs["RootFS"]["Layers"] == built
    assert _log(first) == "v1\n"
    [phase] = first["phases"]["distribution"]
    assert (phase["codec"], phase["wire"]) == ("zstd", worker["wire"])
    assert 0 < phase["rate"] < 14e6  # a 100 Mbit/s link carries 12.5 MB/s at most
    assert _facts(numbers_project)["links"][w3]["zstd"]["raw"] == worker["sent"]

    numbers_project.write("payload.txt", "v2\n")
    second = _run(numbers_project, w3)

    [worker] = second["workers"]
    assert (worker["load"], worker["codec"]) == ("thin", "zstd"), worker
    assert worker["wire"] < worker["sent"] < 0.05 * worker["full_size"]
    assert list((numbers_project.root / ".shardrun" / "cache").glob("*.oci*.tar"))
    assert _log(second) == "v2\n"


def test_a_graph_driver_worker_gets_gzip_never_zstd_full_then_thin(numbers_project, hosts):
    w1 = hosts["SHARDRUN_TEST_W1_TCP"]

    first = _run(numbers_project, w1)

    [worker] = first["workers"]
    assert (worker["load"], worker["codec"]) == ("full", "gzip"), worker
    assert worker["wire"] < 0.5 * worker["sent"]
    w1_client = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    assert w1_client.images.get(first["image_id"]).id == first["image_id"]  # the same ID

    numbers_project.write("payload.txt", "v2\n")
    second = _run(numbers_project, w1)

    [worker] = second["workers"]
    assert (worker["load"], worker["codec"]) == ("thin", "gzip"), worker
    assert w1_client.images.get(second["image_id"]).id == second["image_id"]
    assert _log(second) == "v2\n"
    assert "zstd" not in json.dumps(_facts(numbers_project))


def test_both_stores_in_one_run_share_one_gzip_stream_and_a_unix_socket_gets_it_raw(
    numbers_project, hosts
):
    # Enough shards for every worker to be given some, so no load is abandoned.
    numbers_project.write(
        "shards.toml",
        shards_toml(
            numbers_project,
            SHARDS.replace('name = "show"', 'name = "show-{index}"\ncount = 9').replace(
                '"cat", "/payload.txt"', '"sleep", "2"'
            ),
        ),
    )
    report = _run(
        numbers_project,
        hosts["SHARDRUN_TEST_W1_TCP"],
        hosts["SHARDRUN_TEST_W3_TCP"],
        hosts["SHARDRUN_TEST_W4_UNIX"],
    )

    codecs = {w["url"]: (w["load"], w["codec"]) for w in report["workers"]}
    assert codecs == {
        hosts["SHARDRUN_TEST_W1_TCP"]: ("full", "gzip"),
        hosts["SHARDRUN_TEST_W3_TCP"]: ("full", "gzip"),  # zstd only where all load it
        hosts["SHARDRUN_TEST_W4_UNIX"]: ("full", "none"),
    }
    wires = {w["url"]: w["wire"] for w in report["workers"]}
    assert wires[hosts["SHARDRUN_TEST_W1_TCP"]] == wires[hosts["SHARDRUN_TEST_W3_TCP"]]
    assert wires[hosts["SHARDRUN_TEST_W4_UNIX"]] == report["workers"][0]["full_size"]
    w4 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W4_UNIX"])
    w4.images.remove(content_tag(report["image_id"]), force=True)


def test_a_worker_refusing_its_codec_gets_the_archive_raw_and_it_is_remembered(
    numbers_project, hosts
):
    w1 = hosts["SHARDRUN_TEST_W1_TCP"]
    numbers_project.write(
        "shards.toml",
        shards_toml(numbers_project, SHARDS) + f'\n[[worker]]\nhost = "{w1}"\ncompress = "zstd"\n',
    )

    first = _run(numbers_project)

    [worker] = first["workers"]
    assert (worker["load"], worker["codec"]) == ("full", "none"), worker
    assert worker["wire"] == worker["sent"]
    assert _facts(numbers_project)["codec_refused"] == {w1: ["zstd"]}
    assert _log(first) == "v1\n"

    numbers_project.write("payload.txt", "v2\n")
    second = _run(numbers_project)

    [worker] = second["workers"]
    assert (worker["load"], worker["codec"]) == ("thin", "none"), worker
    assert _log(second) == "v2\n"
    listed = numbers_project.shardrun("workers")
    assert "zstd refused" in listed.stdout, listed.stdout


# Two layers of about 39 MB each above the small ones: the full load comes apart in pieces.
BIG_LAYERS = DOCKERFILE.replace(
    'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox seq 1 2500000 > /numbers"]',
    'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox seq 1 5000000 > /numbers"]\n'
    'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox seq 5000000 10000000 > /more"]',
)


@pytest.mark.parametrize("name", ["w1", "w3"])
def test_a_full_load_over_a_slow_link_goes_in_pieces_and_leaves_just_the_image(
    numbers_project, hosts, name
):
    numbers_project.write("Dockerfile.test", BIG_LAYERS)
    url = hosts[f"SHARDRUN_TEST_{name.upper()}_TCP"]

    report = _run(numbers_project, url)

    [worker] = report["workers"]
    assert (worker["load"], worker["codec"]) == ("full", "gzip" if name == "w1" else "zstd")
    cache = numbers_project.root / ".shardrun" / "cache"
    made = sorted(p.name.split(".", 1)[1] for p in cache.glob("*.*.tar"))
    # Layers: unique.txt, busybox, /numbers, /more, payload.txt. Each piece but the top
    # one holds at least 32 MB; the containerd store's top piece is an OCI layout.
    expected = {
        "w1": ["piece0-3.tar", "piece3-4.tar", "thin4.tar"],
        "w3": ["oci3.tar", "piece0-3.tar"],
    }
    assert made == expected[name]
    assert _log(report) == "v1\n"
    client = docker.DockerClient(base_url=hosts[f"SHARDRUN_TEST_{name.upper()}_UNIX"])
    built = docker.from_env().images.get(report["image_id"]).attrs["RootFS"]["Layers"]
    assert client.images.get(content_tag(report["image_id"])).attrs["RootFS"]["Layers"] == built
    # The piece images are gone; their layers stay, held by the image.
    label = {"label": f"{LABEL_PROJECT}={numbers_project.name}"}
    tags = {t for image in client.images.list(filters=label) for t in image.tags}
    assert tags == {content_tag(report["image_id"])}, tags


def test_an_interrupt_during_a_compressed_transfer_leaves_nothing(numbers_project, hosts):
    w1 = hosts["SHARDRUN_TEST_W1_TCP"]
    _tc(
        "replace",
        "dev",
        "shardrun-w1",
        "root",
        "tbf",
        "rate",
        "4mbit",
        "burst",
        "32kb",
        "latency",
        "400ms",
    )
    proc = numbers_project.popen("run", "--plain", "--worker", w1)
    cache = numbers_project.root / ".shardrun" / "cache"
    deadline = time.monotonic() + 120
    while not list(cache.glob(".*.gzip.*.tmp")):  # the compressed stream is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no compressed stream was ever written"
        time.sleep(0.02)
    time.sleep(1.0)  # well into the transfer: 4 Mbit/s takes seconds for it

    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 130, out + err
    assert "loaded   " not in out
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    w1_client = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"])
    label = {"label": f"{LABEL_PROJECT}={numbers_project.name}"}
    assert w1_client.containers.list(all=True, filters=label) == []
    assert w1_client.images.list(filters=label) == []  # no image from half an archive


NAP_THEN_SHOW = """
[defaults]
network = "none"
[[shard]]
name = "nap"
command = ["/bin/busybox", "sleep", "15"]
[[shard]]
name = "show"
command = ["/bin/busybox", "cat", "/payload.txt"]
"""


def test_a_worker_lost_during_a_compressed_transfer_leaves_nothing(numbers_project, w1_restored):
    # w3 takes the nap on its one slot, so "show" still needs w1 while w1's compressed
    # load creeps over 4 Mbit/s: then w1's daemon is killed.
    hosts = w1_restored
    numbers_project.write("shards.toml", shards_toml(numbers_project, NAP_THEN_SHOW))
    _tc(
        "replace",
        "dev",
        "shardrun-w1",
        "root",
        "tbf",
        "rate",
        "4mbit",
        "burst",
        "32kb",
        "latency",
        "400ms",
    )
    w1, w3 = hosts["SHARDRUN_TEST_W1_TCP"], hosts["SHARDRUN_TEST_W3_TCP"]
    proc = numbers_project.popen("run", "--plain", "--worker", f"{w3}*1", "--worker", f"{w1}*1")
    cache = numbers_project.root / ".shardrun" / "cache"
    deadline = time.monotonic() + 120
    while not list(cache.glob(".*.gzip.*.tmp")):  # w1's compressed stream is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no gzip stream was ever written"
        time.sleep(0.02)
    time.sleep(1.0)  # well into the transfer

    os.kill(int(hosts["SHARDRUN_TEST_W1_PID"]), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)

    assert proc.returncode == 0, out + err
    report = numbers_project.report()
    assert report["lost_workers"] == ["198.18.0.2:2375"], out
    assert {(s["name"], s["status"], s["worker"]) for s in report["shards"]} == {
        ("nap", "PASS", "198.18.0.10:2375"),
        ("show", "PASS", "198.18.0.10:2375"),
    }
    assert "LOST     198.18.0.2:2375" in out
    assert [p.name for p in cache.iterdir() if p.name.endswith(".tmp")] == []
    assert not [p for p in _processes() if "shardrun.distribute.compress.compress_child" in p]
    restarted = hosts_script("restart w1")
    w1_client = docker.DockerClient(base_url=restarted["SHARDRUN_TEST_W1_UNIX"])
    label = {"label": f"{LABEL_PROJECT}={numbers_project.name}"}
    assert w1_client.containers.list(all=True, filters=label) == []
    assert w1_client.images.list(filters=label) == []  # no image from half an archive


def _processes() -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    found.append(f.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
    return found
