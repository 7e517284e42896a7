"""The thin tarball cache and the memory of workers that refuse thin loads (no engine)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from shardrun import layers
from shardrun.artifact import Artifact
from shardrun.distribute import ThinRefusals, thin_tarball
from tests.unit.test_layers import image_tar  # noqa: F401 - a fixture: a docker-save tarball


def _artifact(path: Path) -> Artifact:
    return Artifact(image_id="sha256:" + "ab" * 32, path=path, size=path.stat().st_size,
                    reused=False)


def test_two_workers_writing_one_thin_tarball_at_once_both_get_it(image_tar: Path):  # noqa: F811
    artifact = _artifact(image_tar)
    saved = layers.read_saved(image_tar)
    omit = layers.omitted_files(saved, 1)
    results, errors = [], []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        try:
            results.append(thin_tarball(artifact, omit, 1))
        except Exception as exc:  # noqa: BLE001 - the test reports any
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    thin = results[0]
    assert thin.name == f"{image_tar.stem}.thin1.tar"
    assert layers.read_saved(thin).layer_paths == saved.layer_paths  # manifest intact
    leftovers = [p.name for p in thin.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_refusals_are_remembered_across_runs(tmp_path: Path):
    path = tmp_path / "workers.json"
    first = ThinRefusals(path)
    assert first.allows("ssh://ci@box")
    first.refuse("ssh://ci@box")

    again = ThinRefusals(path)

    assert not again.allows("ssh://ci@box")
    assert again.allows("tcp://other:2375")
    assert json.loads(path.read_text()) == {"thin_refused": ["ssh://ci@box"]}


def test_a_corrupt_refusals_file_is_an_empty_memory(tmp_path: Path):
    path = tmp_path / "workers.json"
    path.write_text("{not json")
    assert ThinRefusals(path).allows("ssh://ci@box")
