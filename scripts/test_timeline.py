"""How a test run's time was spent: read the lines `WIKITIDE_TEST_TIMELINE=FILE make test` wrote and print, per
worker, its busy time and the test files it ran in order (start, end, seconds, relative to the run's first test),
then the files that took longest.

    WIKITIDE_TEST_TIMELINE=/tmp/timeline.tsv make test
    python3 scripts/test_timeline.py /tmp/timeline.tsv
"""

from __future__ import annotations

import sys
from collections import defaultdict


def main(path: str) -> None:
    rows = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            worker, start, end, nodeid = line.rstrip("\n").split("\t", 3)
            rows.append((worker, float(start), float(end), nodeid.split("::", 1)[0]))
    if not rows:
        raise SystemExit(f"{path}: no tests")
    origin = min(start for _, start, _, _ in rows)
    spans: dict[tuple[str, str], list[float]] = {}
    busy: defaultdict[str, float] = defaultdict(float)
    for worker, start, end, unit in rows:
        span = spans.setdefault((worker, unit), [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
        busy[worker] += end - start
    end_of_run = max(end for _, _, end, _ in rows) - origin
    print(f"run: {end_of_run:.0f} s from the first test's start to the last test's end")
    for worker in sorted(busy):
        units = sorted((s, e, u) for (w, u), (s, e) in spans.items() if w == worker)
        print(f"\n{worker}: busy {busy[worker]:.0f} s, {len(units)} files, last end {units[-1][1] - origin:.0f} s")
        for start, end, unit in units:
            if end - start >= 20:
                print(f"  {start - origin:6.0f} {end - origin:6.0f} {end - start:6.0f}s  {unit}")
    print("\nlongest files:")
    for (worker, unit), (start, end) in sorted(spans.items(), key=lambda kv: kv[1][0] - kv[1][1])[:15]:
        print(f"  {end - start:6.0f}s  {worker}  {unit}")


if __name__ == "__main__":
    main(sys.argv[1])
