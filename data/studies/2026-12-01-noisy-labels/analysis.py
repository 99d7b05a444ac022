#!/usr/bin/env python
"""Reads results-<task>.jsonl (README.md's study) and prints the tables of its result; stdlib only."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyPointCircle1-v0")
RATES = (0.0, 0.2)


def paired(a: list[float], b: list[float]) -> str:
    d = [x - y for x, y in zip(a, b)]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return f"{statistics.mean(d):+.1f} ± {se:.1f}"


def main() -> None:
    held = 0
    print("| task | ε | PREFINE return / cost / falls | BC return / cost / falls | PREFINE − BC return | cost | rule |")
    print("|---|---|---|---|---|---|---|")
    runs = {}
    for task in TASKS:
        path = HERE / f"results-{task}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            r = json.loads(line)
            runs[task, r["mistake_rate"], r["variant"], r["seed"]] = r
        for rate in RATES:
            seeds = sorted(s for t, e, v, s in runs if (t, e, v) == (task, rate, "prefine") and (task, rate, "bc", s) in runs)
            if not seeds:
                continue
            col = {v: {k: [runs[task, rate, v, s][k] for s in seeds] for k in ("return", "cost", "fall_rate")}
                   for v in ("prefine", "bc")}
            mean = {v: {k: statistics.mean(x) for k, x in c.items()} for v, c in col.items()}
            beats = mean["prefine"]["cost"] < mean["bc"]["cost"] and mean["prefine"]["return"] >= mean["bc"]["return"]
            held += beats and rate == 0.2
            cells = [f"{mean[v]['return']:.1f} / {mean[v]['cost']:.1f} / {mean[v]['fall_rate']:.2f}" for v in ("prefine", "bc")]
            print(f"| {task} | {rate:g} | {cells[0]} | {cells[1]} | {paired(col['prefine']['return'], col['bc']['return'])} | "
                  f"{paired(col['prefine']['cost'], col['bc']['cost'])} | {'beats BC' if beats else 'no'} ({len(seeds)} sets) |")
    print()
    print("What the noise costs each method, ε = 0.2 − ε = 0, paired by label set (return / cost):")
    for task in TASKS:
        for v in ("prefine", "bc"):
            seeds = sorted(s for t, e, w, s in runs if (t, e, w) == (task, 0.2, v) and (task, 0.0, v, s) in runs)
            if seeds:
                ret = paired([runs[task, 0.2, v, s]["return"] for s in seeds], [runs[task, 0.0, v, s]["return"] for s in seeds])
                cost = paired([runs[task, 0.2, v, s]["cost"] for s in seeds], [runs[task, 0.0, v, s]["cost"] for s in seeds])
                print(f"  {task} {v}: {ret} / {cost}")
    print()
    print(f"H (at ε = 0.2 PREFINE beats BC by the issue's rule on at least two tasks): "
          f"{'held' if held >= 2 else 'not held'} ({held} of 3)")


if __name__ == "__main__":
    main()
