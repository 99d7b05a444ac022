#!/usr/bin/env python
"""Whether the committed benchmark results reproduce BENCHMARKS.md's tables: each ``data/bench/<run>/result.json``
rendered as the benchmark renders it, compared row by row with that run's section of BENCHMARKS.md (every cell but
the wall-time column, which a rerun never repeats). Prints one line per run; exit 1 when a row differs.

    .venv/bin/python scripts/compare_bench_tables.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def table_rows(markdown: str) -> list[tuple[str, ...]]:
    """The cells of every table row (not the rule lines), the fine-tune-seconds column of the wide tables dropped."""
    rows = [tuple(c.strip() for c in line.strip().strip("|").split("|")) for line in markdown.splitlines()
            if line.startswith("| ") and not line.startswith("|---")]
    return [r[:-1] if len(r) > 12 else r for r in rows]


def main() -> int:
    from prefine_core.bench import BENCH_DIR, task_markdown
    from prefine_core.report import read_section

    section = read_section("prefine-bench")
    chunks = {chunk.split("\n", 1)[0]: chunk for chunk in section.split("\n### ")[1:]}
    differ = 0
    for path in sorted(BENCH_DIR.glob("*/result.json")):
        new = task_markdown(json.loads(path.read_text()))
        heading = new.split("\n", 1)[0].removeprefix("### ")
        if heading not in chunks:
            print(f"{path.parent.name}: no section '### {heading}' in BENCHMARKS.md")
            differ += 1
            continue
        old_rows, new_rows = table_rows(chunks[heading]), table_rows(new)
        same = sum(a == b for a, b in zip(old_rows, new_rows))
        ok = same == len(old_rows) == len(new_rows)
        differ += not ok
        print(f"{path.parent.name}: {same} of {len(old_rows)} rows identical (result.json renders {len(new_rows)})"
              + ("" if ok else " — DIFFERS"))
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
