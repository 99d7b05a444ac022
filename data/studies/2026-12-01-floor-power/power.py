"""How often the issue's 5-seed floor "lower cost than BC at equal or better return" comes out met, for the
method as it is: every 5 of the twenty label sets of the twenty-seed run (session 8, evaluation seeds, nothing
chosen by it), PREFINE's and BC's means over those 5, as the benchmark computes them.

    .venv/bin/python data/studies/2026-12-01-floor-power/power.py

Prints, per task: the share of the C(20, 5) = 15 504 five-seed draws on which PREFINE beats BC (and BC beats
PREFINE, by the same rule); then how often two tasks of three pass on the same five label sets; then what PREFINE
would need: the share of draws passed if every PREFINE run had been shifted by a given fraction of BC's mean cost
and of BC's return spread (a what-if on the measured scatter, not a measurement).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyPointCircle1-v0")
RUNS = Path(__file__).resolve().parent.parent / "2026-12-01-twenty-seeds"


def per_seed(task: str, method: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in json.loads((RUNS / f"bench-{task}.json").read_text())["rows"]
            if r["section"] == "grid" and r["method"] == method and r["pairs"] == 200]
    rows.sort(key=lambda r: r["seed"])
    assert [r["seed"] for r in rows] == list(range(20)), (task, method)
    return np.array([r["return_mean"] for r in rows]), np.array([r["cost_mean"] for r in rows])


def beats(ret_a, cost_a, ret_b, cost_b, draws) -> np.ndarray:
    """Per draw: a's mean cost below b's, at a mean return at least b's."""
    return (cost_a[draws].mean(1) < cost_b[draws].mean(1)) & (ret_a[draws].mean(1) >= ret_b[draws].mean(1))


def main() -> None:
    draws = np.array(list(itertools.combinations(range(20), 5)))
    passed = {}
    print(f"{len(draws)} draws of 5 label sets of 20 (the benchmark's own are sets 0-4)\n")
    print("| task | PREFINE beats BC | BC beats PREFINE | sets 0-4 | what-if: PREFINE shifted by 25 % / 50 % / 75 % |")
    print("|---|---|---|---|---|")
    for task in TASKS:
        (rp, cp), (rb, cb) = per_seed(task, "prefine"), per_seed(task, "bc")
        passed[task] = beats(rp, cp, rb, cb, draws)
        what_if = [beats(rp + f * rb.std(), cp - f * cb.mean(), rb, cb, draws).mean() for f in (0.25, 0.5, 0.75)]
        print(f"| {task} | {passed[task].mean():.1%} | {beats(rb, cb, rp, cp, draws).mean():.1%} | "
              f"{'yes' if passed[task][0] else 'no'} | {' / '.join(f'{w:.0%}' for w in what_if)} |")
    two = sum(p.astype(int) for p in passed.values()) >= 2
    print(f"\ntwo tasks of three on the same five label sets: {two.mean():.1%} of draws")
    print("(what-if: every PREFINE run's cost lowered by that fraction of BC's mean cost and its return raised by that "
          "fraction of BC's per-seed return spread)")


if __name__ == "__main__":
    main()
