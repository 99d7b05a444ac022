"""The study's criterion (README, written before the evaluation ran), computed from what it measured.

    .venv/bin/python data/studies/2026-12-01-selection-tolerance/analysis.py [--runs DIR …] [--seeds …]

Each run's pick for every candidate ``select_tolerance`` comes from its own selection history — what the trainer
read at each checkpoint (``val/safety``, the validation return of episodes 9 000…), copied at full precision from the
runs' ``state.json`` into ``histories-<task>.json`` — by the trainer's ``choose_by_safety``; the pick is scored by
the study's validation episodes (seed 9 980, ``checkpoints-<task>.jsonl``). Prints per task and tolerance the means over the label sets of PREFINE
and BC, the paired difference, and the share of five-label-set draws passing "lower cost at ≥ return" per task and
on at least two tasks of three (P₂), then the verdict by the README's rule.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO))

from prefine_core.trainer import choose_by_safety  # noqa: E402  (the trainer's own rule)

TASKS = ("SafetyHalfCheetahVelocity-v1", "SafetyHopperVelocity-v1", "SafetyPointCircle1-v0")
TOLERANCES = (0.1, 0.05, 0.0, 0.2)
TODAY = 0.1


def scores(task: str) -> dict[tuple[str, int, int], dict]:
    """(method, label seed, step) -> that checkpoint's figures on the study's validation episodes."""
    rows = [json.loads(line) for line in (HERE / f"checkpoints-{task}.jsonl").read_text().splitlines()]
    return {(r["variant"], r["seed"], r["step"]): r for r in rows}


def picks(task: str, seeds: list[int], tolerance: float, scored: dict) -> dict[str, list[dict]]:
    histories = json.loads((HERE / f"histories-{task}.json").read_text())
    return {method: [scored[method, seed, choose_by_safety(histories[f"{method}_n200_s{seed}"], tolerance)["step"]]
                     for seed in seeds] for method in ("prefine", "bc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(52, 64)))
    args = parser.parse_args()
    draws = np.array(list(itertools.combinations(range(len(args.seeds)), 5)))
    passed: dict[float, list[np.ndarray]] = {t: [] for t in TOLERANCES}
    prefine_means: dict[tuple[float, str], tuple[float, float]] = {}
    print("| task | tolerance | PREFINE return / cost / falls | BC return / cost / falls | PREFINE − BC: return | cost | draws passed |")
    print("|---|---|---|---|---|---|---|")
    for task in TASKS:
        scored = scores(task)
        for tolerance in TOLERANCES:
            chosen = picks(task, args.seeds, tolerance, scored)
            (rp, cp, fp), (rb, cb, fb) = ([np.array([r[k] for r in chosen[m]]) for k in
                                          ("validation_return", "validation_cost", "validation_fall_rate")]
                                         for m in ("prefine", "bc"))
            win = (cp[draws].mean(1) < cb[draws].mean(1)) & (rp[draws].mean(1) >= rb[draws].mean(1))
            passed[tolerance].append(win)
            prefine_means[tolerance, task] = (rp.mean(), fp.mean())
            se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
            print(f"| {task} | {tolerance:g} | {rp.mean():.1f} / {cp.mean():.1f} / {fp.mean():.2f} | "
                  f"{rb.mean():.1f} / {cb.mean():.1f} / {fb.mean():.2f} | {(rp - rb).mean():+.1f} ± {se(rp - rb):.1f} | "
                  f"{(cp - cb).mean():+.1f} ± {se(cp - cb):.1f} | {win.mean():.0%} |")
    p2 = {t: float((sum(w.astype(int) for w in passed[t]) >= 2).mean()) for t in TOLERANCES}
    print(f"\nP₂ (at least two tasks of three, same draw; {len(draws)} draws of 5 of {len(args.seeds)} label sets):")
    for tolerance in TOLERANCES:
        print(f"  select_tolerance {tolerance:g}: {p2[tolerance]:.1%}")
    best = max(TOLERANCES, key=lambda t: p2[t])
    keeps = all(prefine_means[best, task][0] >= 0.98 * prefine_means[TODAY, task][0]
                and prefine_means[best, task][1] <= prefine_means[TODAY, task][1] + 0.02 for task in TASKS)
    adopted = best != TODAY and p2[best] >= p2[TODAY] + 0.15 and keeps
    print(f"\nhighest P₂: {best:g} ({p2[best]:.1%} against {p2[TODAY]:.1%} today); PREFINE keeps ≥ 98 % of its return "
          f"and its fall rate there: {'yes' if keeps else 'no'}")
    print(f"verdict: {'adopt select_tolerance = ' + format(best, 'g') if adopted else 'select_tolerance = 0.1 stays'}")


if __name__ == "__main__":
    main()
