"""Shared bench helpers: a throwaway busybox project, timing, medians, interleaving."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported after the sys.path fix above.
from tests.engine.conftest import ensure_busybox, ensure_python_base

LOCAL = "unix:///var/run/docker.sock"
# The Debian + Python base (scripts/make-python-base) plus a layer that copies /usr/lib,
# /usr/share and /usr/bin: ordinary files (code, libraries, docs), not random bytes, so it
# compresses as a real test image does (about 455 MB as a `docker save` archive).
PYTHON_BASE = "shardrun-python-base:bookworm"
ORDINARY_IMAGE_DOCKERFILE = f"""\
FROM {PYTHON_BASE}
RUN mkdir /opt/copy && cp -a /usr/lib /usr/share /usr/bin /opt/copy/
"""
# busybox + SIZE MB of random bytes (they do not compress) + top.txt as the last layer: a
# change to top.txt leaves every layer but the top one as the workers already hold it.
BIG_IMAGE_DOCKERFILE = """ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
RUN dd if=/dev/urandom of=/blob bs=1M count={size} 2>/dev/null
COPY top.txt /top.txt
"""


def busybox(client: docker.DockerClient | None = None) -> str:
    return ensure_busybox(client or docker.from_env())


def python_base(client: docker.DockerClient | None = None) -> str:
    """The Debian + Python base, found or made as the tests get it (scripts/make-python-base,
    one maker at a time); what is missing to make it, in one line."""
    try:
        return ensure_python_base(client or docker.from_env())
    except pytest.fail.Exception as exc:
        sys.exit(str(exc))


def project(shards_toml: str, dockerfile: str = "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n") -> Path:
    root = Path(tempfile.mkdtemp(prefix="shardrun-bench-"))
    (root / "Dockerfile.test").write_text(dockerfile)
    (root / "shards.toml").write_text(shards_toml)
    return root


def timed(argv: list[str], cwd: Path | None = None, env: dict | None = None, **kw) -> float:
    start = time.perf_counter()
    subprocess.run(
        argv,
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        **kw,
    )
    return time.perf_counter() - start


def interleaved(runs: int, **variants) -> dict[str, list[float]]:
    """Time each variant `runs` times, alternating, so drift hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(runs):
        for name, fn in variants.items():
            samples[name].append(fn())
    return samples


def report(samples: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(samples[baseline])
    for name, values in samples.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<28} median {med:6.2f}s  ratio {med / base:5.2f}  (runs: {runs})")


def worker_hosts() -> dict[str, str]:
    """Start (or reuse) the two namespace workers; their env lines as a dict.

    `scripts/worker-hosts up` is idempotent and prints only the env lines on stdout.
    """
    done = subprocess.run(
        [str(ROOT / "scripts" / "worker-hosts"), "up"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"scripts/worker-hosts up failed:\n{done.stderr}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def captured(argv: list[str], cwd: Path | None = None) -> tuple[float, str]:
    """Like timed(), but also return stdout; on failure, exit with its output."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return seconds, done.stdout


def latest_report(root: Path) -> dict:
    return json.loads((root / ".shardrun" / "runs" / "latest" / "report.json").read_text())


def mb(n: float) -> str:
    """Bytes for people: 0 B, 20.5 KB, 211.9 MB."""
    if n < 1000:
        return f"{n:.0f} B"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} KB"


def load_note() -> str:
    """The 1-minute load average: others' work on this shared box skews the figures."""
    return f"load average (1 min) {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def cleanup(project_name: str, root: Path, urls: list[str]) -> None:
    """Remove a bench's images from every engine, then its temp project."""
    remove_images(project_name, urls)
    shutil.rmtree(root, ignore_errors=True)


def remove_images(project_name: str, urls: list[str]) -> None:
    """By the project label shardrun puts on the build, which loaded copies keep."""
    for url in urls:
        ids = subprocess.run(
            [
                "docker",
                "-H",
                url,
                "image",
                "ls",
                "-q",
                "--no-trunc",
                "--filter",
                f"label=shardrun.project={project_name}",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if ids:
            subprocess.run(
                ["docker", "-H", url, "rmi", "-f", *sorted(set(ids))],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )
