#!/usr/bin/env python3
"""One table for make test's stacks (dev, jazzy, floor), read from each pytest run's JUnit XML, and
one closing line for them all. Standard library only: it runs with whichever Python is there.

    scripts/test_summary.py build/dev/junit.xml build/jazzy/junit.xml build/floor/junit.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(path: Path) -> dict[str, float]:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    total = {"tests": 0.0, "failures": 0.0, "errors": 0.0, "skipped": 0.0, "time": 0.0}
    for suite in suites:
        for key in total:
            total[key] += float(suite.get(key, 0))
    return total


def main(paths: list[str]) -> int:
    rows, overall = [], {"passed": 0, "failed": 0, "skipped": 0}
    missing = []
    for raw in paths:
        path = Path(raw)
        if not path.is_file():
            missing.append(raw)
            continue
        c = counts(path)
        failed = int(c["failures"] + c["errors"])
        skipped = int(c["skipped"])
        passed = int(c["tests"]) - failed - skipped
        rows.append(f"| {path.parent.name} | {passed} | {failed} | {skipped} | {c['time']:.0f} |")
        overall["passed"] += passed
        overall["failed"] += failed
        overall["skipped"] += skipped
    print("\n| stack | passed | failed | skipped | pytest s |\n|---|---|---|---|---|")
    print("\n".join(rows))
    for raw in missing:
        print(f"test_summary: {raw} is missing: that stack's pytest did not finish")
    print(f"total: {overall['passed']} passed, {overall['failed']} failed, {overall['skipped']} skipped")
    return 1 if overall["failed"] or missing else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
