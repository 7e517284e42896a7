"""report.json: the run as versioned JSON (shardrun/report/schema.json)."""

from __future__ import annotations

import dataclasses

from shardrun.model.results import ShardResult
from shardrun.model.shard import to_json as shard_json
from shardrun.report import junit
from shardrun.report.summary import RunSummary

SCHEMA = "https://shardrun.dev/schemas/report-1.json"  # its file: shardrun/report/schema.json
# Additions within version 1 (schema.json's rule): 1 adds each shard's reused_from and
# reuse_key (results reused by content, issue 27).
SCHEMA_MINOR = 1


def to_json(summary: RunSummary) -> dict:
    planned = {s.name: shard_json(s) for s in summary.shards}
    return {
        "schema": SCHEMA,
        "schema_minor": SCHEMA_MINOR,
        "run_id": summary.run_id,
        "project": summary.project,
        "image_id": summary.image_id,
        "started": summary.started,
        "finished": summary.finished,
        "exit_code": summary.exit_code,
        "interrupted": summary.interrupted,
        "error": summary.error,
        "lost_workers": list(summary.lost_workers),
        "lost_required_workers": list(summary.lost_required),
        "partition": dict(summary.partition) if summary.partition else None,
        "partitions": [dict(p) for p in summary.partitions],
        "phases": {
            "build": summary.build,
            "save": summary.save,
            "distribution": [
                {
                    "worker": w.name,
                    "mode": w.load,
                    "sent": w.sent,
                    "codec": w.codec,
                    "wire": w.wire or w.sent,
                    "rate": round(w.rate),
                    "started": w.load_started,
                    "seconds": w.load_seconds,
                }
                for w in summary.workers
                if w.load
            ],
            "compression": [dict(c) for c in summary.compression],
        },
        "flaky": junit.flaky_count(summary.results),
        "workers": [dataclasses.asdict(w) for w in summary.workers],
        "shards": [
            {
                "name": r.name,
                "status": r.status.value,
                "exit_code": r.exit_code,
                "started": r.started,
                "finished": r.finished,
                "duration": r.duration,
                "worker": r.worker,
                "slot": r.slot,
                "attempt": r.attempt,
                "log": r.log_path,
                "detail": r.detail,
                "artifacts": list(r.artifacts),
                "artifacts_note": r.artifacts_note,
                "artifacts_left_out": list(r.artifacts_left_out),
                "junit": r.junit,
                "image": r.image,
                "options": planned.get(r.name),
                "test_cases": _cases_json(r),
                "kept_container": r.kept,
                "reused_from": r.reused_from,
                "reuse_key": r.reuse_key,
            }
            for r in summary.results
        ],
    }


def _cases_json(result: ShardResult) -> list[dict] | None:
    """The test cases of the shard's own JUnit file (None if it wrote none)."""
    found = junit.flaky_and_cases(result)
    if found is None:
        return None
    cases, flaky = found
    return [
        {
            "classname": c.classname,
            "name": c.name,
            "time": c.time,
            "outcome": c.outcome,
            "message": c.message,
            "flaky": c.key in flaky,
        }
        for c in cases
    ]
