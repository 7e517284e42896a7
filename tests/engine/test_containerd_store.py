"""Workers on the containerd image store (the default of fresh Docker 29 installs): w3, a
dockerd 26.1 from Debian trixie with that store on, beside w1, a dockerd 20.10 with its
graph driver. `scripts/worker-hosts up` starts both.

On that store an image's ID is its manifest's digest, so shardrun recognises the image by
its content tag, and a thin load is an OCI layout, not a docker archive.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import tarfile
from pathlib import Path

import docker
import pytest

from shardrun.distribute.artifact import oci_layout
from shardrun.model.image_ref import content_tag
from tests.engine.conftest import (
    LABEL_PROJECT,
    clear_project_from,
    ensure_busybox,
    hosts_script,
    shards_toml,
    wait_for_running,
)

# A bottom layer of the project's own (unique.txt): no earlier test's image shares it, so
# the first load can only be a full one. busybox comes from this machine's busybox-static.
SCRATCH_DOCKERFILE = """\
FROM scratch
COPY unique.txt /unique.txt
COPY busybox /bin/busybox
RUN ["/bin/busybox", "dd", "if=/dev/urandom", "of=/blob", "bs=1024", "count=2048"]
COPY payload.txt /payload.txt
"""

NAPS = """
[defaults]
network = "none"
[[shard]]
name = "nap-{index}"
count = 4
command = ["/bin/busybox", "sh", "-c", "/bin/busybox cat /payload.txt; /bin/busybox sleep 1"]
"""


@pytest.fixture
def store_project(project, hosts):
    project.write("Dockerfile.test", SCRATCH_DOCKERFILE)
    project.write("unique.txt", project.name)
    shutil.copy(shutil.which("busybox") or "/bin/busybox", project.root / "busybox")
    project.write("shards.toml", shards_toml(project, NAPS))
    yield project
    clear_project_from(project, [hosts["SHARDRUN_TEST_W3_UNIX"], hosts["SHARDRUN_TEST_W1_UNIX"]])


def _loads(report: dict) -> dict[str, tuple[str, int]]:
    return {w["name"]: (w["load"], w["sent"]) for w in report["workers"]}


def _logs(report: dict) -> dict[str, str]:
    return {s["name"]: Path(s["log"]).read_text() for s in report["shards"]}


def test_a_containerd_store_worker_loads_once_then_nothing_then_only_the_new_layer(
    store_project, hosts
):
    w3 = hosts["SHARDRUN_TEST_W3_TCP"]
    name = w3.removeprefix("tcp://")

    first = store_project.shardrun("run", "--plain", "--worker", f"{w3}*2")
    assert first.returncode == 0, first.stdout + first.stderr
    [worker] = store_project.report()["workers"]
    assert (worker["load"], worker["sent"]) == ("full", worker["full_size"])
    image_id = store_project.report()["image_id"]
    # The store knows the image by another ID (its manifest's digest), and by our tag.
    w3_image = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W3_UNIX"]).images.get(
        content_tag(image_id)
    )
    assert w3_image.id != image_id

    again = store_project.shardrun("run", "--plain", "--worker", f"{w3}*2")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _loads(store_project.report()) == {name: ("none", 0)}
    listed = store_project.shardrun("workers", "--worker", w3)
    [row] = [line for line in listed.stdout.splitlines() if line.startswith(f"│ {name}")]
    assert "26.1" in row and row.rstrip(" │").endswith("yes"), listed.stdout

    store_project.write("payload.txt", "the new top layer\n")
    changed = store_project.shardrun("run", "--plain", "--worker", f"{w3}*2")

    assert changed.returncode == 0, changed.stdout + changed.stderr
    report = store_project.report()
    [worker] = report["workers"]
    assert worker["load"] == "thin", worker
    assert worker["sent"] < 0.01 * worker["full_size"], worker
    assert set(_logs(report).values()) == {"the new top layer\n"}
    [layout] = (store_project.root / ".shardrun" / "cache").glob("*.oci*.tar")
    with tarfile.open(layout) as tar:  # an OCI layout, naming the image by its tag
        index = json.load(tar.extractfile("index.json"))
    [described] = index["manifests"]
    assert described["annotations"][oci_layout.NAME_ANNOTATION] == (
        "docker.io/" + content_tag(report["image_id"])
    )


def test_one_image_is_recognised_on_both_stores_in_one_run(store_project, hosts):
    workers = [
        "--worker",
        "default*1",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*1",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W3_TCP']}*1",
    ]
    store_project.write(
        "shards.toml",
        shards_toml(
            store_project, NAPS.replace("count = 4", "count = 6").replace("sleep 1", "sleep 2")
        ),
    )

    first = store_project.shardrun("run", "--plain", *workers)
    assert first.returncode == 0, first.stdout + first.stderr
    again = store_project.shardrun("run", "--plain", *workers)

    assert again.returncode == 0, again.stdout + again.stderr
    report = store_project.report()
    assert set(_loads(report).values()) == {("none", 0)}
    assert {s["worker"] for s in report["shards"]} == {
        "local",
        "198.18.0.2:2375",
        "198.18.0.10:2375",
    }
    assert all(s["status"] == "PASS" for s in report["shards"])


def test_a_refused_oci_layout_falls_back_to_a_full_load_and_is_not_held_against_it(
    store_project, hosts
):
    w3 = hosts["SHARDRUN_TEST_W3_TCP"]
    first = store_project.shardrun("run", "--plain", "--shard", "nap-1", "--worker", w3)
    assert first.returncode == 0, first.stdout + first.stderr
    store_project.write("payload.txt", "v2\n")
    built = store_project.shardrun("build", "--plain")
    assert built.returncode == 0, built.stderr
    image_id, full = built.stdout.strip().splitlines()[-2:]
    # The layout w3 would get, whole by every check of ours, but its manifest names one
    # layer more than the image's config: "failed to unpack loaded image: mismatched image
    # rootfs and manifest layers".
    cache = store_project.root / ".shardrun" / "cache"
    bad = cache / f"{image_id.removeprefix('sha256:')}.oci3.tar"
    diff_ids = _diff_ids(Path(store_project.root, full))
    _write_layout_with_an_extra_layer(
        Path(store_project.root, full), image_id, set(diff_ids[:3]), bad
    )
    assert oci_layout.is_complete(bad, image_id, set(diff_ids[:3]))

    result = store_project.shardrun("run", "--plain", "--shard", "nap-1", "--worker", w3)

    assert result.returncode == 0, result.stdout + result.stderr
    report = store_project.report()
    [worker] = report["workers"]
    assert (worker["load"], worker["sent"]) == ("full", worker["full_size"])
    assert _logs(report) == {"nap-1": "v2\n"}
    facts = json.loads((cache.parent / "workers.json").read_text())
    assert w3 not in facts.get("thin_refused", []) and w3 not in facts.get("codec_refused", {})


def _diff_ids(tarball: Path) -> list[str]:
    with tarfile.open(tarball) as tar:
        [entry] = json.load(tar.extractfile("manifest.json"))
        return json.load(tar.extractfile(entry["Config"]))["rootfs"]["diff_ids"]


def _write_layout_with_an_extra_layer(
    full: Path, image_id: str, omit: set[str], dest: Path
) -> None:
    """An OCI layout of `full` without `omit`, whose manifest lists its top layer twice."""
    plain = dest.with_suffix(".plain")
    with open(full, "rb") as src, open(plain, "w+b") as out:
        oci_layout.write_from_save(
            iter(lambda: src.read(1 << 20), b""), omit, content_tag(image_id), out
        )
    with tarfile.open(plain) as tar, tarfile.open(dest, "w", format=tarfile.GNU_FORMAT) as bad:
        index = json.load(tar.extractfile("index.json"))
        [described] = index["manifests"]
        old_name = "blobs/sha256/" + described["digest"].removeprefix("sha256:")
        manifest = json.load(tar.extractfile(old_name))
        manifest["layers"].append(manifest["layers"][-1])
        data = json.dumps(manifest).encode()
        described.update(digest="sha256:" + hashlib.sha256(data).hexdigest(), size=len(data))
        replaced = {
            old_name: ("blobs/sha256/" + described["digest"].removeprefix("sha256:"), data),
            "index.json": ("index.json", json.dumps(index).encode()),
        }
        for member in tar.getmembers():
            name, data = replaced.get(member.name, (member.name, None))
            if data is None:
                data = tar.extractfile(member).read()
            member.name, member.size = name, len(data)
            bad.addfile(member, io.BytesIO(data))
    plain.unlink()


def test_a_containerd_store_builder_before_28_stops_in_one_line_with_exit_3(store_project, hosts):
    w3 = hosts["SHARDRUN_TEST_W3_TCP"]
    for command in ("run", "build"):
        result = store_project.shardrun(command, "--plain", "--builder", w3)

        assert result.returncode == 3, result.stdout + result.stderr
        [line] = result.stderr.strip().splitlines()
        assert "containerd image store" in line and "28.0" in line and "--builder" in line
        assert "build-context" not in result.stdout + result.stderr  # BuildKit's own error
        assert "Traceback" not in result.stderr
    assert not (store_project.root / ".shardrun" / "runs" / "latest").exists()


def test_a_remote_builder_sends_the_image_to_every_other_worker_the_local_one_too(
    store_project, hosts, docker_client
):
    # w1 builds (named in [image] builder by its [[worker]] name); the local engine and
    # w3 get the tarball from it. Both lack the image: its bottom layer is new.
    store_project.write(
        "shards.toml",
        shards_toml(
            store_project,
            NAPS,
            image='builder = "w1"\n'
            f'[[worker]]\nname = "w1"\nhost = "{hosts["SHARDRUN_TEST_W1_TCP"]}"\nslots = 1\n'
            '[[worker]]\ncontext = "default"\nslots = 1\n'
            f'[[worker]]\nhost = "{hosts["SHARDRUN_TEST_W3_TCP"]}"\nslots = 1\n',
        ),
    )

    result = store_project.shardrun("run", "--plain")

    assert result.returncode == 0, result.stdout + result.stderr
    report = store_project.report()
    assert _loads(report)["w1"] == ("none", 0)  # the builder never loads what it built
    assert _loads(report)["local"][0] == "full"
    assert _loads(report)["198.18.0.10:2375"][0] == "full"
    assert docker_client.images.get(report["image_id"]).id == report["image_id"]
    assert all(s["status"] == "PASS" for s in report["shards"])


@pytest.fixture
def w3_restored(hosts):
    """For tests that stop w3's daemon: its current pid, and it back afterwards."""
    yield {**hosts, **hosts_script("env")}
    hosts_script("restart w3")


def test_a_containerd_store_worker_stopped_mid_run_is_lost_and_its_shards_finish_elsewhere(
    store_project, w3_restored
):
    hosts = w3_restored
    store_project.write(
        "shards.toml",
        shards_toml(
            store_project, NAPS.replace("count = 4", "count = 6").replace("sleep 1", "sleep 4")
        ),
    )
    proc = store_project.popen(
        "run", "--plain", "--worker", "default*2", "--worker", f"{hosts['SHARDRUN_TEST_W3_TCP']}*2"
    )
    try:
        wait_for_running(
            docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W3_UNIX"]), store_project
        )
        os.kill(int(hosts["SHARDRUN_TEST_W3_PID"]), signal.SIGTERM)  # as systemd stops it
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert proc.returncode == 0, out + err
    report = store_project.report()
    assert report["lost_workers"] == ["198.18.0.10:2375"]
    assert {s["status"] for s in report["shards"]} == {"PASS"}
    assert {s["worker"] for s in report["shards"]} == {"local"}
    [verdict] = [line for line in out.splitlines() if "(exit 0)" in line]
    assert "1 of 2 workers lost: 198.18.0.10:2375" in verdict

    # The stopped daemon kept its containers; the next run on that worker sweeps them.
    hosts_script("restart w3")
    w3 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W3_UNIX"])
    label = {"label": f"{LABEL_PROJECT}={store_project.name}"}
    assert w3.containers.list(all=True, filters=label), "expected the stopped run's leftovers"
    again = store_project.shardrun(
        "run", "--plain", "--shard", "nap-1", "--worker", hosts["SHARDRUN_TEST_W3_TCP"]
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert w3.containers.list(all=True, filters=label) == []


BUILT_ON_W4 = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN dd if=/dev/urandom of=/blob bs=1024 count=2048 2>/dev/null
COPY payload.txt /payload.txt
"""


def test_a_current_containerd_store_builder_feeds_both_stores_thin(project, hosts):
    # w4: dockerd 28.5 on the containerd store, whose BuildKit can build from a context
    # sent over the API. Its image ID is a manifest digest, and the layers it builds are
    # saved as gzip blobs: the workers still get only what they lack.
    w4 = hosts["SHARDRUN_TEST_W4_TCP"]
    ensure_busybox(docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W4_UNIX"]))
    project.write("Dockerfile.test", BUILT_ON_W4)
    project.write(
        "shards.toml",
        shards_toml(
            project,
            NAPS.replace(
                '"/bin/busybox", "sh", "-c", "/bin/busybox cat /payload.txt; /bin/busybox sleep 1"',
                '"sh", "-c", "cat /payload.txt; sleep 1"',
            ).replace("count = 4", "count = 3"),
            image=f'builder = "{w4}"\n',
        ),
    )
    workers = [
        "--worker",
        "default*1",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W1_TCP']}*1",
        "--worker",
        f"{hosts['SHARDRUN_TEST_W3_TCP']}*1",
    ]

    first = project.shardrun("run", "--plain", *workers)
    assert first.returncode == 0, first.stdout + first.stderr
    image_id = project.report()["image_id"]
    # w4's ID (a manifest digest) is not what the graph-driver worker knows the image by
    # (its config digest): that one finds it by the content tag.
    on_w1 = docker.DockerClient(base_url=hosts["SHARDRUN_TEST_W1_UNIX"]).images.get(
        content_tag(image_id)
    )
    assert on_w1.id != image_id
    again = project.shardrun("run", "--plain", *workers)
    assert again.returncode == 0
    assert set(_loads(project.report()).values()) == {("none", 0)}

    project.write("payload.txt", "built on w4, changed\n")
    changed = project.shardrun("run", "--plain", *workers)

    assert changed.returncode == 0, changed.stdout + changed.stderr
    report = project.report()
    for worker in report["workers"]:
        assert worker["load"] == "thin", worker
        assert worker["sent"] < 0.05 * worker["full_size"], worker  # not the 2 MB layer
    assert set(_logs(report).values()) == {"built on w4, changed\n"}
    assert {s["worker"] for s in report["shards"]} == {
        "local",
        "198.18.0.2:2375",
        "198.18.0.10:2375",
    }
    for url in (
        hosts["SHARDRUN_TEST_W4_UNIX"],
        hosts["SHARDRUN_TEST_W3_UNIX"],
        hosts["SHARDRUN_TEST_W1_UNIX"],
    ):
        client = docker.DockerClient(base_url=url)
        for image in client.images.list(filters={"label": f"{LABEL_PROJECT}={project.name}"}):
            for tag in image.tags:
                client.images.remove(tag, force=True)
