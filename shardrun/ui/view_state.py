"""What the front ends show, folded from events. Pure: both views render from this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shardrun.model import events as ev
from shardrun.model.results import ShardResult
from shardrun.model.transit import NONE


@dataclass
class ShardView:
    name: str
    state: str = "queued"  # queued, running, or a Status value once finished
    worker: str = ""
    slot: int = 0
    started: float | None = None
    finished: float | None = None
    last_line: str = ""
    result: ShardResult | None = None


@dataclass
class WorkerView:
    name: str
    slots: int = 0
    sent: int = 0
    total: int = 0
    mode: str = ""
    codec: str = NONE
    lost: str = ""


@dataclass
class ViewState:
    build_step: str = ""
    build_started: float | None = None
    build_done: ev.BuildFinished | None = None
    artifact: ev.ArtifactReady | None = None
    run_id: str = ""
    shards: dict[str, ShardView] = field(default_factory=dict)
    workers: dict[str, WorkerView] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)  # seconds a shard, if recorded
    slots: int = 0  # containers at once, as planned (0: unknown)

    def apply(self, event: ev.Event) -> None:
        match event:
            case ev.BuildStarted():
                self.build_started = event.at
            case ev.BuildStep(state="started"):
                self.build_step = event.name
            case ev.BuildFinished():
                self.build_done = event
            case ev.ArtifactReady():
                self.artifact = event
            case ev.WorkerReady():
                self._worker(event.worker).slots = event.slots
            case ev.WorkerTransfer():
                worker = self._worker(event.worker)
                worker.sent, worker.total, worker.mode = event.sent, event.total, event.mode
                worker.codec = event.codec
            case ev.WorkerLost():
                self._worker(event.worker).lost = event.reason
            case ev.RunPlanned():
                self.run_id = event.run_id
                self.shards = {name: ShardView(name) for name in event.shards}
                if len(event.expected) == len(event.shards):
                    self.expected = dict(zip(event.shards, event.expected, strict=True))
                self.slots = event.slots
            case ev.ShardStarted():
                shard = self.shards.setdefault(event.name, ShardView(event.name))
                shard.state, shard.worker, shard.slot = "running", event.worker, event.slot
                shard.started, shard.finished, shard.last_line = event.at, None, ""
            case ev.ShardOutput() if event.name in self.shards and event.line:
                self.shards[event.name].last_line = event.line
            case ev.ShardFinished():
                shard = self.shards.setdefault(event.result.name, ShardView(event.result.name))
                shard.state, shard.result = event.result.status.value, event.result
                shard.finished = event.at
            case ev.ShardRequeued() if event.name in self.shards:
                self.shards[event.name] = ShardView(event.name)  # a fresh row for the retry

    def _worker(self, name: str) -> WorkerView:
        return self.workers.setdefault(name, WorkerView(name))

    @property
    def finished_count(self) -> int:
        return sum(s.result is not None for s in self.shards.values())

    def seconds_left(self, shards: Sequence[ShardView], now: float) -> float | None:
        """When the run is expected to end, in seconds from `now`, from the recorded times
        of `shards` not yet finished (a running one's less the time it has run); None when
        no time is recorded or nothing is left to run."""
        if not self.expected:
            return None
        left = [
            max(self.expected[s.name] - (now - s.started), 0.0)
            if s.state == "running" and s.started is not None
            else self.expected[s.name]
            for s in shards
            if s.result is None and s.name in self.expected
        ]
        return expected_end(left, self._slots()) if left else None

    def _slots(self) -> int:
        """The slots left to the run: as planned, fewer once a worker is lost."""
        alive = sum(w.slots for w in self.workers.values() if not w.lost)
        if any(w.lost for w in self.workers.values()):
            return min(self.slots or alive, alive)
        return self.slots or alive


def expected_end(left: Sequence[float], slots: int) -> float:
    """Seconds until the last of the shards that are `left` seconds from done is expected to
    end: their work spread evenly over `slots`, but no sooner than the longest of them
    alone (a shard runs on one slot). A plain estimate: honest, not a schedule."""
    if not left:
        return 0.0
    return max(sum(left) / max(slots, 1), max(left))
