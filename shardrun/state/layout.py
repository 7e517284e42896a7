"""The layout of `.shardrun/`, the project's state folder: the one module that names its
files. Every other module asks here, so a writer and the sweep that removes what a killed
writer left behind cannot drift apart.

```
.shardrun/
  image-id                     the latest build's image ID (for `shardrun workers`)
  image-content                its content digest (for `list`: what a run would reuse)
  timings.json                 recorded shard and file times (unless `timings = "..."`)
  results.json                 shards that passed, by the content they ran on (reuse)
  .results.lock                its writer lock (flock)
  workers.json                 per worker: refusals (thin loads, codecs), last transfers
  runs/<run-id>/               a run's logs, reports and artifacts; runs/latest links the newest
  runs/<run-id>/owner.json     the live runner of that run (gone once it has finished)
  runs/<run-id>/report.json, junit.xml, summary.md, report.html   what every run writes
  runs/<run-id>/<shard>[.K].log, <shard>[.K]/junit.xml, <shard>[.K]/artifacts/...
  runs/<run-id>/partition-K/, reused/   a merged run's partitions and its reused shards
  cache/<id>.tar               an image's full tarball (docker save)
  cache/<id>.thin<N>.tar       a docker archive without the lowest N layers
  cache/<id>.oci<N>.tar        an OCI layout without the lowest N layers (containerd store)
  cache/<id>.piece<A>-<B>.tar  layers A to B-1 of the image as an image of its layers below B
  cache/blobs.json             which blob each built layer was saved as
  cache/.<name>.lock           a cache file's writer lock (flock)
  cache/.<name>.<pid>.<hex>.tmp  a file being written, renamed into place when whole
```

Pure: names only, no I/O.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME = ".shardrun"
RUNS = "runs"
LATEST = "latest"  # runs/latest -> the newest run's folder


def state_dir(project_root: Path) -> Path:
    return project_root / NAME


# ---- top-level files ------------------------------------------------------------------


def timings(state: Path) -> Path:
    return state / "timings.json"


def results_record(state: Path) -> Path:
    """The passed shards a later run may reuse; beside timings.json, so a CI cache that
    carries one carries both."""
    return state / "results.json"


def workers_file(state: Path) -> Path:
    return state / "workers.json"


def latest_image(state: Path) -> Path:
    return state / "image-id"


def latest_content(state: Path) -> Path:
    """The latest image's content digest (plan/reuse_key.py), for `list`."""
    return state / "image-content"


# ---- runs -----------------------------------------------------------------------------


def runs(state: Path) -> Path:
    return state / RUNS


def run_dir(state: Path, run_id: str) -> Path:
    return state / RUNS / run_id


def latest_link(state: Path) -> Path:
    return state / RUNS / LATEST


def run_owner(state: Path, run_id: str) -> Path:
    """Who is writing the run's folder (owner labels), while it runs: `clean` leaves it."""
    return run_dir(state, run_id) / OWNER


def report_json(state: Path, run_id: str) -> Path:
    return run_dir(state, run_id) / REPORT_JSON


# ---- a run's folder (a merged run's partition-K/ folders hold the same) ------------------

REPORT_JSON, JUNIT_XML, SUMMARY_MD, REPORT_HTML = (
    "report.json",
    "junit.xml",
    "summary.md",
    "report.html",
)
REPORTS = (REPORT_JSON, JUNIT_XML, SUMMARY_MD, REPORT_HTML)  # what every run writes
OWNER = "owner.json"
SHARD_JUNIT = "junit.xml"  # <shard>[.<attempt>]/junit.xml: the shard's own, taken in
ARTIFACTS = "artifacts"  # <shard>[.<attempt>]/artifacts/...: the files it left


def shard_stem(name: str, attempt: int) -> str:
    """`name`, or `name.K` for its Kth attempt: its log is STEM.log, its files in STEM/."""
    return name if attempt == 1 else f"{name}.{attempt}"


def shard_log(run_folder: Path, name: str, attempt: int) -> Path:
    return run_folder / f"{shard_stem(name, attempt)}.log"


def shard_folder(run_folder: Path, name: str, attempt: int) -> Path:
    return run_folder / shard_stem(name, attempt)


# ---- the cache --------------------------------------------------------------------------


def cache(state: Path) -> Path:
    return state / "cache"


def _hex(image_id: str) -> str:
    return image_id.removeprefix("sha256:")


def tarball(cache_dir: Path, image_id: str) -> Path:
    return cache_dir / f"{_hex(image_id)}.tar"


def thin_tarball(full: Path, skip: int) -> Path:
    """The thin tarball cut from the full tarball `full`, without its `skip` bottom layers."""
    return full.with_name(f"{full.stem}.thin{skip}.tar")


def oci_layout(cache_dir: Path, image_id: str, skip: int) -> Path:
    return cache_dir / f"{_hex(image_id)}.oci{skip}.tar"


def piece_tarball(cache_dir: Path, image_id: str, start: int, end: int) -> Path:
    return cache_dir / f"{_hex(image_id)}.piece{start}-{end}.tar"


def blob_names(cache_dir: Path) -> Path:
    return cache_dir / "blobs.json"


# Every tarball the cache holds: <id>.tar, <id>.thin<N>.tar, <id>.oci<N>.tar,
# <id>.piece<A>-<B>.tar.
CACHED_TARBALL = re.compile(
    r"(?P<id>[0-9a-f]{64})(\.(?P<kind>thin|oci|piece)(?P<skip>\d+)(-\d+)?)?\.tar"
)


def is_full_tarball(path: Path) -> bool:
    match = CACHED_TARBALL.fullmatch(path.name)
    return bool(match) and match["kind"] is None  # type: ignore[index]


def lock(final: Path) -> Path:
    """The lock file of the cache file `final`."""
    return final.with_name(f".{final.stem}.lock")


# Lock files of every file that has a writer: tarballs of all four kinds, blobs.json, and
# in the state folder itself results.json.
LOCK = re.compile(r"\.(?:[0-9a-f]{64}(?:\.(?:thin|oci)\d+|\.piece\d+-\d+)?|blobs|results)\.lock")


def temp(final: Path, pid: int, token: str) -> Path:
    """Where `final` is written before it is renamed into place: the writer's pid in the
    name lets a later command tell a dead writer's leftover from a live one's file."""
    return final.with_name(f".{final.name}.{pid}.{token}.tmp")


TEMP = (
    re.compile(r"\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp"),
    re.compile(r"\.[0-9a-f]{64}\.tar\.(?P<pid>\d+)\.tmp"),  # before 0.1: .<id>.tar.<pid>.tmp
)
# Before 0.1, thin tarballs were written through mkstemp(".<name>.", ".tmp"): no pid to ask.
OLD_THIN_TEMP = re.compile(r"\.[0-9a-f]{64}\.thin\d+\.tar\.[a-z0-9_]{8}\.tmp")
