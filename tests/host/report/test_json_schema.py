"""report.json against its published JSON Schema (jsonschema, from the test extra: the
unit tests also run in the test image, which has only pytest and rich)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from shardrun.report import write as report
from shardrun.report.json_report import to_json
from shardrun.report.summary import RunSummary
from tests.unit.report.test_write import mixed  # noqa: F401 - the fixture


def test_report_json_round_trips_and_validates_against_its_schema(mixed: RunSummary):  # noqa: F811
    schema = json.loads((Path(report.__file__).parent / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    data = to_json(
        replace(
            mixed,
            build={"started": 1.0, "finished": 2.0, "cached_steps": 3, "total_steps": 4},
            save={"started": 2.0, "finished": 3.0, "bytes": 10, "reused": False},
            compression=(
                {
                    "archive": "abc.tar",
                    "layer": "sha256:1",
                    "codec": "zstd",
                    "raw": 10,
                    "compressed": 4,
                    "seconds": 0.5,
                    "cpu": 0.7,
                },
            ),
        )
    )
    assert data["schema"] == schema["$id"]
    again = json.loads(json.dumps(data))
    assert again == data
    jsonschema.validate(again, schema)
    assert again["phases"]["compression"][0]["codec"] == "zstd"
    again["shards"][0]["status"] = "MAYBE"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(again, schema)
