"""engine/context: the build context as the engine takes it (docker-py's rules; no engine)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from shardrun.engine.context import context_archive, context_files


def _project(tmp_path: Path) -> Path:
    for name in ("Dockerfile.test", "src/a.py", "src/b.py", "build/out.o", ".shardrun/t.json"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    (tmp_path / ".dockerignore").write_text("# generated\nbuild\n")
    return tmp_path


def test_the_files_a_split_shares_follow_dockerignore_and_never_the_state_folder(tmp_path):
    root = _project(tmp_path)
    files = context_files(root, root / "Dockerfile.test", exclude=(".shardrun",))
    assert files == [".dockerignore", "Dockerfile.test", "src/a.py", "src/b.py"]


def test_the_archive_is_gnu_with_whole_second_mtimes_so_buildkit_takes_it_for_a_tar(tmp_path):
    # A PAX tar (Python's default, with float mtimes) is read by BuildKit as a Dockerfile.
    root = _project(tmp_path)
    os.utime(root / "src/a.py", (1_700_000_000.5, 1_700_000_000.5))
    archive, dockerfile = context_archive(root, root / "Dockerfile.test", exclude=(".shardrun",))
    with archive:
        head = archive.read(512)
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
    assert head[257:265] == b"ustar  \x00"  # GNU magic, not POSIX/PAX "ustar\x0000"
    assert dockerfile == "Dockerfile.test"
    assert "build/out.o" not in members and ".shardrun/t.json" not in members
    assert members["src/a.py"].mtime == 1_700_000_000
    assert not any(m.pax_headers for m in members.values())
