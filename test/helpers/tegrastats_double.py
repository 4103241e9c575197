"""TEST DOUBLE for the Jetson ``tegrastats`` binary (which cannot exist here): replays recorded
lines at ``--interval`` ms, then behaves as the scenario says for this invocation.

    tegrastats_double.py LINES_FILE STATE_FILE SCENARIO [--interval MS]

SCENARIO is a comma list, one entry per invocation (the last one repeats): ``die:N`` prints N
lines then exits 1; ``hang:N`` prints N lines then sleeps silently; ``run`` prints forever;
``garbage:N`` prints N unparseable lines then runs. STATE_FILE counts invocations.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("lines")
    ap.add_argument("state")
    ap.add_argument("scenario")
    ap.add_argument("--interval", type=int, default=100)
    a = ap.parse_args()
    state = Path(a.state)
    run = int(state.read_text()) if state.is_file() else 0
    state.write_text(str(run + 1))
    steps = a.scenario.split(",")
    kind, _, n = steps[min(run, len(steps) - 1)].partition(":")
    recorded = [x for x in Path(a.lines).read_text().splitlines() if x.strip()]
    lines = itertools.cycle(recorded)
    count = int(n) if n else 0
    if kind == "garbage":
        for _ in range(count):
            print("%%% not a tegrastats line ]]]", flush=True)
            time.sleep(a.interval / 1000)
        kind, count = "run", 0
    for i in itertools.count():
        if kind != "run" and i >= count:
            break
        print(next(lines), flush=True)
        time.sleep(a.interval / 1000)
    if kind == "die":
        return 1
    time.sleep(3600)  # hang: alive and silent
    return 0


if __name__ == "__main__":
    sys.exit(main())
