#!/usr/bin/env python
"""Reads results-<pool>-pool.jsonl (README.md's study) and prints its tables and the verdict on H1–H3; stdlib only.

    analysis.py [CANDIDATE] [--confirm]   # CANDIDATE: behaviour_speedcap0.35 (default, analysis.txt), …

``--confirm`` reads the confirmatory run (results-<pool>-pool-confirm.jsonl: label sets 88–95, validation episodes
from seed 8 100) and gives the verdict on S1–S2 instead.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARGS = [a for a in sys.argv[1:] if a != "--confirm"]
CONFIRM = "--confirm" in sys.argv[1:]
CANDIDATE = ARGS[0] if ARGS else "behaviour_speedcap0.35"
POOLS = ("benchmark", CANDIDATE)
KEYS = ("benchmark", "candidate")  # how the tables below name the two pools
METHODS = ("prefine", "bc")
LIMIT, RETURN_FLOOR = 25.0, 0.9 * 1612  # the benchmark's cost limit; 90 % of the PPO-Lagrangian's return
REFERENCE_FALLS = 0.2  # the reference's fall rate on the evaluation seeds: the floor's "no more falls"


def paired(a: list[float], b: list[float]) -> str:
    d = [x - y for x, y in zip(a, b)]
    se = statistics.stdev(d) / len(d) ** 0.5 if len(d) > 1 else float("nan")
    return f"{statistics.mean(d):+.1f} ± {se:.1f}"


def load() -> dict:
    runs = {}
    for pool in POOLS:
        path = HERE / f"results-{pool}-pool{'-confirm' if CONFIRM else ''}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            r = json.loads(line)
            runs["candidate" if pool == CANDIDATE else pool, r["variant"], r["seed"]] = r
    return runs


def main() -> None:
    runs = load()
    seeds = sorted({s for _, _, s in runs if all((p, m, s) in runs for p in KEYS for m in METHODS)})
    if not seeds:
        raise SystemExit("no label set has all four runs yet")
    col = {(p, m): {k: [runs[p, m, s][k] for s in seeds] for k in ("return", "cost", "fall_rate", "violation_rate")}
           for p in KEYS for m in METHODS}
    mean = {key: {k: statistics.mean(x) for k, x in c.items()} for key, c in col.items()}
    print(f"Candidate {CANDIDATE}. Label sets {seeds[0]}–{seeds[-1]} ({len(seeds)}), 200 pairs, 10 validation episodes "
          f"from seed {'8 100' if CONFIRM else '8 000'}.")
    print()
    print("| pool | method | return | cost | over the limit | falls |")
    print("|---|---|---|---|---|---|")
    for p in KEYS:
        for m in METHODS:
            r = mean[p, m]
            print(f"| {p} | {m} | {r['return']:.0f} | {r['cost']:.1f} | {r['violation_rate']:.2f} | {r['fall_rate']:.2f} |")
    print()
    print("Paired by label set (return / cost):")
    for m in METHODS:
        print(f"  {m}, candidate − benchmark pool: {paired(col['candidate', m]['return'], col['benchmark', m]['return'])}"
              f" / {paired(col['candidate', m]['cost'], col['benchmark', m]['cost'])}")
    for p in KEYS:
        print(f"  PREFINE − BC, {p} pool: {paired(col[p, 'prefine']['return'], col[p, 'bc']['return'])}"
              f" / {paired(col[p, 'prefine']['cost'], col[p, 'bc']['cost'])}")
    print()
    if CONFIRM:
        b_p, c_p, c_b = mean["benchmark", "prefine"], mean["candidate", "prefine"], mean["candidate", "bc"]
        s1 = (c_p["return"] >= RETURN_FLOOR and c_p["fall_rate"] <= REFERENCE_FALLS and c_p["cost"] < b_p["cost"]
              and c_p["violation_rate"] < b_p["violation_rate"])
        s2 = c_p["cost"] < c_b["cost"] and c_p["return"] >= c_b["return"]
        print(f"S1 (with the candidate PREFINE's return at least {RETURN_FLOOR:.0f}, falls at most {REFERENCE_FALLS}, "
              f"cost and episodes over the limit below the benchmark pool's): {'held' if s1 else 'not held'}")
        print(f"S2 (with the candidate PREFINE beats BC by the issue's rule): {'held' if s2 else 'not held'}")
        print(f"Decision: {'the next session ships the gait and reruns the three benchmarks' if s1 else 'the pool stays; the lead is closed'}")
        return
    h1 = all(mean["candidate", m]["cost"] < min(LIMIT, mean["benchmark", m]["cost"])
             and mean["candidate", m]["violation_rate"] < mean["benchmark", m]["violation_rate"] for m in METHODS)
    h2 = mean["candidate", "prefine"]["return"] >= RETURN_FLOOR
    c_p, c_b = mean["candidate", "prefine"], mean["candidate", "bc"]
    h3 = c_p["cost"] < c_b["cost"] and c_p["return"] >= c_b["return"]
    print(f"H1 (with the candidate both methods under the limit, below their own cost with the benchmark's pool, "
          f"fewer episodes over it): {'held' if h1 else 'not held'}")
    print(f"H2 (with the candidate PREFINE's return at least {RETURN_FLOOR:.0f}): {'held' if h2 else 'not held'} "
          f"({c_p['return']:.0f})")
    print(f"H3 (with the candidate PREFINE beats BC by the issue's rule): {'held' if h3 else 'not held'}")
    print(f"Decision: {'ship the candidate and rerun the Hopper benchmark' if h1 and h2 else 'the benchmark pool stays'}")


if __name__ == "__main__":
    main()
