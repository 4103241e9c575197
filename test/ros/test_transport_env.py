"""ros/transport.py: orphaned Fast DDS shared-memory files are removed, files in use or just created
are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bevfusion_ros.ros.transport import clean_orphaned_shm


def test_only_orphaned_old_fastdds_files_are_removed(tmp_path: Path) -> None:
    old = time.time() - 3600
    orphan = tmp_path / "fastdds_0123456789abcdef"
    orphan.write_bytes(b"\0" * 8192)
    lock = tmp_path / "fastdds_0123456789abcdef_el"
    lock.write_bytes(b"")
    sem = tmp_path / "sem.fastdds_port7412"
    sem.write_bytes(b"x")
    in_use = tmp_path / "fastdds_fedcba9876543210"
    in_use.write_bytes(b"\0" * 4096)
    young = tmp_path / "fastdds_aaaaaaaaaaaaaaaa"
    young.write_bytes(b"")
    other = tmp_path / "not_fastdds"
    other.write_bytes(b"")
    for p in (orphan, lock, sem, in_use, other):
        os.utime(p, (old, old))
    with open(in_use, "rb"):  # held open by this process, as a live participant maps its segment
        removed, freed = clean_orphaned_shm(tmp_path, min_age_s=60)
    assert removed == 3 and freed >= 8192
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([in_use.name, young.name, other.name])


def test_only_the_given_files_are_candidates(tmp_path: Path) -> None:
    old = time.time() - 3600
    ours, theirs = tmp_path / "fastdds_1111111111111111", tmp_path / "fastdds_2222222222222222"
    for p in (ours, theirs):
        p.write_bytes(b"\0" * 4096)
        os.utime(p, (old, old))
    assert clean_orphaned_shm(tmp_path, min_age_s=60, only={ours})[0] == 1
    assert [p.name for p in tmp_path.iterdir()] == [theirs.name]
