"""Start-up time of the commands that need no engine (issue 7): `--help` and `list`.

Times `python3 -m shardrun --help`, `python3 -m shardrun list` (in a throwaway project)
and, as the floor every Python command pays, `python3 -c pass`; interleaved, so drift on
the machine hits all three alike. Prints the median, the spread (min-max) and the ratio
to the baseline. Needs no Docker, so it does not use bench/common.py (which imports it).

    python3 bench/startup.py [--runs N] [--src DIR] [--bytecode]

--src times the shardrun package in DIR (default: this checkout, put first on PYTHONPATH
so an installed copy does not stand in for it), e.g. an unpacked `git archive` of an older
commit for a before/after comparison. With PYTHONDONTWRITEBYTECODE set (as in the dev
container) every run compiles shardrun's modules again; --bytecode lets them be cached,
in a temporary PYTHONPYCACHEPREFIX, as they are for an installed package.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARDS_TOML = """\
project = "startup-bench"

[defaults]
command = ["python3", "-m", "pytest", "-q"]

[[shard]]
name = "unit-{index}"
count = 4
env = { SHARD = "{index}/{total}" }
"""


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--src", type=Path, default=ROOT)
    parser.add_argument("--bytecode", action="store_true", help="cache compiled modules")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
    with tempfile.TemporaryDirectory(prefix="shardrun-startup-") as tmp:
        root = Path(tmp)
        if args.bytecode:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        (root / "shards.toml").write_text(SHARDS_TOML)
        (root / "Dockerfile.test").write_text("FROM scratch\n")
        variants = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "shardrun --help": [sys.executable, "-m", "shardrun", "--help"],
            "shardrun list": [sys.executable, "-m", "shardrun", "list"],
        }
        for argv in variants.values():  # warm the page cache (and the .pyc files)
            timed(argv, root, env)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.runs):
            for name, argv in variants.items():
                samples[name].append(timed(argv, root, env))

    base = statistics.median(samples["python3 -c pass"])
    compiled = "cached" if "PYTHONDONTWRITEBYTECODE" not in env else "compiled every run"
    print(
        f"{args.src} (shardrun's bytecode {compiled}): {args.runs} interleaved runs "
        "each, wall time:"
    )
    for name, values in samples.items():
        med = statistics.median(values)
        print(
            f"  {name:<16} median {med:.3f}s  spread {min(values):.3f}-{max(values):.3f}s"
            f"  ratio {med / base:5.2f}"
        )


if __name__ == "__main__":
    main()
