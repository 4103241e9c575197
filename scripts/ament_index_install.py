#!/usr/bin/env python3
"""Put this checkout into the venv's ament index as ``colcon build --symlink-install`` would, so that
``ros2 launch bevfusion_ros ...``, ``ros2 run bevfusion_ros ...`` and ``ros2 pkg prefix bevfusion_ros``
work after ``make setup`` with the package installed in editable mode.

  share/ament_index/resource_index/packages/bevfusion_ros   the marker
  share/bevfusion_ros/{package.xml,launch,config,engines}    real folders of per-file symlinks
  lib/bevfusion_ros/<executable>                             symlinks to the venv's console scripts

Files are symlinked one by one (ros2launch does not descend into a symlinked folder), so an edit to
a launch or config file shows at once; a file added or removed needs ``make setup`` again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

PACKAGE = "bevfusion_ros"
SHARED_FOLDERS = ("launch", "config", "engines")
SKIP = {"build", "__pycache__"}  # engines/build holds engines built on this machine, not package data


def fail(msg: str) -> None:
    print(f"ament_index_install: error: {msg}", file=sys.stderr)
    raise SystemExit(2)


def link_tree(src: Path, dest: Path) -> int:
    n = 0
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in SKIP for part in rel.parts) or not path.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path)
        n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--source", type=Path, default=Path(__file__).resolve().parents[1], help="the checkout")
    args = ap.parse_args()
    prefix = Path(sys.prefix)
    if prefix == Path(sys.base_prefix):
        fail("run this with the virtual environment's python (sys.prefix is not a venv)")
    src = args.source.resolve()
    if not (src / "package.xml").is_file():
        fail(f"{src} has no package.xml")
    share = prefix / "share" / PACKAGE
    shutil.rmtree(share, ignore_errors=True)
    share.mkdir(parents=True)
    (share / "package.xml").symlink_to(src / "package.xml")
    files = sum(link_tree(src / folder, share / folder) for folder in SHARED_FOLDERS)
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("")
    lib = prefix / "lib" / PACKAGE
    shutil.rmtree(lib, ignore_errors=True)
    lib.mkdir(parents=True)
    # every console script the distribution declares (setup.py's entry points), as colcon installs them
    from importlib.metadata import distribution

    executables = sorted(ep.name for ep in distribution(PACKAGE).entry_points if ep.group == "console_scripts")
    for name in executables:
        script = prefix / "bin" / name
        if not script.is_file():
            fail(f"{script} is missing: install the package first (pip install -e .)")
        (lib / name).symlink_to(script)
    print(f"ament_index_install: {PACKAGE} in {prefix}'s ament index ({files} files, {len(executables)} executables)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
