"""shardrun.engine.fake: the in-memory engine keeps the interface's promises, and its
scripted behaviour and faults do what the workflow tests rely on."""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import anyio
import pytest

from shardrun.distribute.artifact import layers
from shardrun.engine.api import ContainerRequest, Engine
from shardrun.model.errors import EngineRefused, TransportError
from shardrun.model.image_ref import content_tag
from shardrun.model.shard import Shard
from shardrun.run import workers
from shardrun.run.shard import streams
from tests.fakes.engine import KILLED, FakeEngine, FakeImage, frame

IMAGE = FakeImage.make(b"base", b"tests", labels={"shardrun.project": "proj"})


@pytest.fixture
def fakes():
    """Makes fake engines; at the end every one stops answering, which frees any thread
    a test left blocked in one of them."""
    made: list[FakeEngine] = []

    def make(name: str = "fake", **kwargs) -> FakeEngine:
        made.append(FakeEngine(name, **kwargs))
        return made[-1]

    yield make
    for engine in made:
        engine.stop_answering()


def request(shard: str = "s", **labels: str) -> ContainerRequest:
    return ContainerRequest(IMAGE.id, Shard(name=shard), labels)


def output_of(engine: FakeEngine, container_id: str) -> bytes:
    stream = engine.attach(container_id)
    demux = streams.Demux()
    out = b"".join(demux.feed(block) for block in streams.blocks(stream.read))
    stream.close()
    assert demux.pending == 0
    return out


def in_thread(target, *args):
    """Run `target` in a thread; returns the thread and a list that gets its outcome."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(target(*args))
        except Exception as exc:  # noqa: BLE001 - the test looks at what came out
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_it_has_every_method_of_the_engine_interface_with_the_same_parameters():
    wanted = {
        name
        for name, _ in inspect.getmembers(Engine, inspect.isfunction)
        if not name.startswith("_")
    }
    assert wanted  # the Protocol's methods were found at all
    for name in wanted:
        ours = inspect.signature(getattr(FakeEngine, name)).parameters
        theirs = inspect.signature(getattr(Engine, name)).parameters
        assert list(ours) == list(theirs), name


# ---- images --------------------------------------------------------------------------


def test_a_save_by_content_tag_is_a_whole_docker_save_of_the_image(fakes, tmp_path: Path):
    engine = fakes(images=[IMAGE])
    by_id, by_tag = tmp_path / "by-id.tar", tmp_path / "by-tag.tar"
    by_id.write_bytes(b"".join(engine.save(IMAGE.id, 100)))
    engine.tag(IMAGE.id, content_tag(IMAGE.id))
    by_tag.write_bytes(b"".join(engine.save(content_tag(IMAGE.id), 100)))

    # Only the tagged save names the image on a containerd-store worker.
    assert not layers.is_complete(by_id, IMAGE.id)
    assert layers.is_complete(by_tag, IMAGE.id)
    assert layers.read_saved(by_tag).diff_ids == tuple(IMAGE.diff_ids)
    assert engine.image_size(IMAGE.id) == by_id.stat().st_size
    assert [c.name for c in engine.calls] == ["save", "tag", "save", "image_size"]


def test_loading_the_tarball_makes_the_image_present(fakes):
    source, target = fakes("a", images=[IMAGE]), fakes("b")
    assert not target.has_image(IMAGE.id)

    target.load(source.save(IMAGE.id, 7))

    assert target.has_image(IMAGE.id)
    assert target.image_layers("proj") == [IMAGE.diff_ids]
    assert target.image_layers("other") == []
    assert target.loads == [IMAGE.tarball()]


def test_a_thin_tarball_loads_only_where_the_left_out_layers_are_held(fakes, tmp_path: Path):
    full = tmp_path / "full.tar"
    full.write_bytes(IMAGE.tarball())
    saved = layers.read_saved(full)
    thin = tmp_path / "thin.tar"
    layers.write_thin(full, layers.omitted_files(saved, 1), thin)
    holds_base = fakes("base", images=[FakeImage.make(b"base")])
    bare = fakes("bare")

    holds_base.load([thin.read_bytes()])
    with pytest.raises(EngineRefused, match="is missing"):
        bare.load([thin.read_bytes()])

    assert holds_base.has_image(IMAGE.id) and not bare.has_image(IMAGE.id)
    assert b"".join(holds_base.save(IMAGE.id, 1 << 20)) == IMAGE.tarball()  # whole again


def test_a_load_of_anything_else_is_refused(fakes):
    engine = fakes()
    with pytest.raises(EngineRefused, match="not a docker save tarball"):
        engine.load([b"opaque bytes"])


def test_build_reads_the_context_and_answers_with_the_image_id(fakes, tmp_path: Path):
    engine = fakes(built=IMAGE)
    context = tmp_path / "ctx.tar"
    context.write_bytes(b"tar")
    with context.open("rb") as body:
        messages = list(engine.build(body, {"version": "2"}))
        assert body.read() == b""
    assert messages[-1] == {"id": "moby.image.id", "aux": {"ID": IMAGE.id}}
    assert engine.has_image(IMAGE.id)


# ---- containers ----------------------------------------------------------------------


def test_a_container_runs_its_script_and_streams_its_output_as_frames(fakes):
    engine = fakes().script("s", exit_code=3, output=[b"one\n", b"two\n"], read_size=5)
    container_id = engine.create(request("s", **{"shardrun.run": "R"}))
    stream = engine.attach(container_id)
    engine.start(container_id)

    blocks = list(streams.blocks(stream.read))

    assert b"".join(blocks) == frame(b"one\n") + frame(b"two\n")
    assert {len(b) for b in blocks[:-1]} == {5}  # cut where the script says
    assert engine.wait(container_id) == 3
    assert [c.state for c in engine.containers("shardrun.run=R")] == ["exited"]
    assert engine.containers("shardrun.run=other") == []
    engine.remove(container_id)
    assert engine.present == {} and engine.history[0].state == "removed"
    assert [c.name for c in engine.calls] == [
        "create",
        "attach",
        "start",
        "wait",
        "containers",
        "containers",
        "remove",
    ]


def test_a_container_runs_for_its_scripted_time(fakes):
    engine = fakes().script("s", seconds=0.15)
    container_id = engine.create(request())
    began = time.monotonic()
    engine.start(container_id)
    assert engine.running()

    assert engine.wait(container_id) == 0
    assert 0.15 <= time.monotonic() - began < 1
    assert engine.running() == []


def test_one_that_runs_forever_exits_137_when_killed(fakes):
    engine = fakes().script("s", seconds=None, output=b"hello\n")
    container_id = engine.create(request())
    engine.start(container_id)
    waiter, outcome = in_thread(engine.wait, container_id)
    reader, output = in_thread(output_of, engine, container_id)
    time.sleep(0.05)
    assert outcome == [] and output == []  # both still waiting on the container

    engine.kill(container_id)
    waiter.join(1)
    reader.join(1)

    assert outcome == [KILLED] and output == [b"hello\n"]
    engine.kill(container_id)  # exited already: nothing
    engine.kill("no-such-container")  # gone: nothing


def test_removing_a_running_container_ends_its_wait_and_its_stream(fakes):
    engine = fakes().script("s", seconds=None)
    container_id = engine.create(request())
    stream = engine.attach(container_id)
    engine.start(container_id)
    waiter, outcome = in_thread(engine.wait, container_id)

    engine.remove(container_id)
    waiter.join(1)

    assert outcome == [KILLED]
    assert stream.read() == b""
    engine.remove(container_id)  # gone is fine
    with pytest.raises(EngineRefused, match="no such container"):
        engine.start(container_id)


# ---- faults --------------------------------------------------------------------------


def test_a_fault_on_the_nth_call_only(fakes):
    engine = fakes().fail("create", TransportError, nth=2)
    engine.create(request("a"))
    with pytest.raises(TransportError, match="create failed"):
        engine.create(request("b"))
    engine.create(request("c"))
    assert [c.args[0].shard.name for c in engine.called("create")] == ["a", "b", "c"]
    assert [c.shard for c in engine.history] == ["a", "c"]


def test_a_fault_on_the_calls_a_predicate_picks(fakes):
    refused = EngineRefused("invalid mount config")
    engine = fakes().fail("create", refused, when=lambda req: req.shard.name == "bad")
    engine.create(request("good"))
    with pytest.raises(EngineRefused) as caught:
        engine.create(request("bad"))
    assert caught.value is refused


def test_a_dead_daemon_breaks_off_a_wait_and_answers_nothing_more(fakes):
    engine = fakes().script("s", seconds=None)
    container_id = engine.create(request())
    engine.start(container_id)
    waiter, outcome = in_thread(engine.wait, container_id)
    time.sleep(0.02)

    engine.stop_answering()
    waiter.join(1)

    assert isinstance(outcome[0], TransportError)
    assert engine.ping(5) is False
    with pytest.raises(TransportError):
        engine.containers("shardrun.run")
    assert [c.name for c in engine.calls][-2:] == ["ping", "containers"]


def test_a_hung_host_blocks_calls_until_released_and_fails_pings(fakes):
    engine = fakes(images=[IMAGE])
    engine.hang()
    caller, outcome = in_thread(engine.has_image, IMAGE.id)
    began = time.monotonic()
    assert engine.ping(0.1) is False
    assert time.monotonic() - began >= 0.1
    assert outcome == []  # still blocked

    engine.release()
    caller.join(1)

    assert outcome == [True]
    assert engine.ping(0.1) is True


def test_a_slow_load_takes_its_time(fakes):
    source, target = fakes("a", images=[IMAGE]), fakes("b").delay("load", 0.2)
    began = time.monotonic()
    target.load(source.save(IMAGE.id, 1 << 20))
    assert time.monotonic() - began >= 0.2
    assert target.has_image(IMAGE.id)


def test_the_heartbeat_notices_a_host_cut_off(fakes, monkeypatch):
    # Worker.watch takes its interval as an argument; the ping timeout is the module's.
    monkeypatch.setattr(workers, "_PING_TIMEOUT", 0.05)
    engine = fakes()
    worker = workers.Worker(name="w", endpoint=None, engine=engine, slots=1, cpus=1, version="fake")
    lost: list[str] = []

    async def main() -> None:
        with anyio.fail_after(2):
            await worker.watch(lambda w, why: lost.append(why), interval=0.01, misses=2)

    engine.hang()
    anyio.run(main)

    assert lost == ["no answer to 2 pings in a row"]
    assert len(engine.called("ping")) == 2


def test_paced_output_comes_a_read_at_a_time(fakes):
    engine = fakes().script("s", output=[b"1\n", b"2\n", b"3\n"], pace=0.05, seconds=None)
    container_id = engine.create(request())
    stream = engine.attach(container_id)
    engine.start(container_id)
    began = time.monotonic()

    reads = [stream.read() for _ in range(3)]

    assert reads == [frame(b"1\n"), frame(b"2\n"), frame(b"3\n")]
    assert 0.1 <= time.monotonic() - began < 1
    engine.kill(container_id)
    assert stream.read() == b""
