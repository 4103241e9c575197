"""ros/transport.py: orphaned Fast DDS shared-memory files are removed, files in use or just created
are kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

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


def test_fast_dds_2_files_are_candidates_too(tmp_path: Path) -> None:
    """Fast DDS 2.x (Humble, Jazzy) names its files fastrtps_*, 3.x (Kilted) fastdds_*."""
    old = time.time() - 3600
    files = [
        tmp_path / n for n in ("fastrtps_0123456789abcdef", "fastrtps_0123456789abcdef_el", "sem.fastrtps_port7412")
    ]
    for p in files:
        p.write_bytes(b"x")
        os.utime(p, (old, old))
    assert clean_orphaned_shm(tmp_path, min_age_s=60)[0] == 3
    assert not list(tmp_path.iterdir())


def test_fast_dds_2_reads_its_profile_from_the_old_variable_without_a_sourced_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast DDS 2.x (Humble, Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE. From a distribution
    ROS_DISTRO says which; from pip wheels (no ROS_DISTRO) the installed Fast DDS does: 2.x installs
    share/fastrtps, 3.x share/fastdds. Without it the shared-memory profile was silently not applied
    on the Jazzy wheels and large images went over UDP."""
    from bevfusion_ros.ros.transport import middleware_settings

    assert "FASTRTPS_DEFAULT_PROFILES_FILE" in middleware_settings("p.xml", None, "humble")
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in middleware_settings("p.xml", None, "kilted")
    for layout, old_name in (("fastrtps", True), ("fastdds", False)):
        prefix = tmp_path / layout
        (prefix / "share" / layout).mkdir(parents=True)
        monkeypatch.setattr("sys.prefix", str(tmp_path / "empty"))
        monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
        got = middleware_settings("p.xml", None, "")
        assert got["FASTDDS_DEFAULT_PROFILES_FILE"] == "p.xml"
        assert ("FASTRTPS_DEFAULT_PROFILES_FILE" in got) is old_name, layout
