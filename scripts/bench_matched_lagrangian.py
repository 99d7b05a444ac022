#!/usr/bin/env python
"""PPO-Lagrangian retrained from scratch to PREFINE's own cost level (issue 4 §6, "to the same cost level").

The benchmark's Lagrangian aims at cost 25 (κ of DSRL). Where PREFINE ends above that, a Lagrangian allowed
as much cost may earn more return, which would make "PREFINE's return ≥ 90 % of the Lagrangian's" easier than
it should be. For each task with a finished benchmark (``data/bench/<task>/result.json``) this trains a
PPO-Lagrangian whose limit is PREFINE's mean cost at the largest budget, evaluates it on the evaluation seeds
exactly as the benchmark does, and writes the comparison to BENCHMARKS.md (section ``matched-lagrangian``).

    .venv/bin/python scripts/bench_matched_lagrangian.py [--steps 1000000] [--lagrange-lr 0.005] [--tasks ID ...]

``--steps`` trains for the tasks named by ``--tasks`` (default: all); every run already in a task's folder
at PREFINE's current cost level is listed too, so a longer run sits beside the 1M one.
"""
from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _prefine_cost(result: dict) -> float:
    """PREFINE's mean episode cost at the largest budget, to 0.1: the matched Lagrangian's limit."""
    from prefine_core.bench import at_largest_budget

    _, pre = at_largest_budget(result)
    return round(sum(r["cost_mean"] for r in pre) / len(pre), 1)


def matched_row(result: dict, steps: int, lagrange_lr: float) -> dict:
    from prefine_core.bench import BENCH_DIR, BenchConfig, at_largest_budget, evaluate_row, lagrangian

    task = result["task"]
    top, pre = at_largest_budget(result)
    mean = lambda key: sum(r[key] for r in pre) / len(pre)  # noqa: E731
    limit = _prefine_cost(result)
    # The benchmark's own Lagrangian code, aimed at PREFINE's cost and kept in a folder of its own.
    matched = BenchConfig(task_id=task, cost_limit=limit, lagrangian_steps=steps, lagrange_lr=lagrange_lr,
                          out_dir=BENCH_DIR / task / f"matched-lagrangian-limit{limit:g}-steps{steps}")
    policy, meta = lagrangian(matched, print, steps)
    seconds = meta["wall_s"]
    trained = datetime.fromtimestamp((matched.out_dir / "lagrangian.json").stat().st_mtime, timezone.utc)
    row = evaluate_row(policy, BenchConfig(task_id=task))  # κ = 25 as everywhere else
    ratio = mean("return_mean") / row["return_mean"] if row["return_mean"] > 0 else float("inf")
    return {
        "task": task, "pairs": top, "PREFINE cost = Lagrangian limit": limit, "PREFINE return": round(mean("return_mean"), 1),
        "Lagrangian cost": row["cost_mean"], "Lagrangian return": row["return_mean"],
        "Lagrangian falls": row["fall_rate"], "PREFINE / Lagrangian return": round(ratio, 2), "≥ 90 %": "yes" if ratio >= 0.9 else "no",
        "Lagrangian env steps": meta["env_steps"], "Lagrangian wall s": round(seconds),
        "trained": trained.strftime("%Y-%m-%d %H:%M UTC"),
        "reproduce": f"python scripts/bench_matched_lagrangian.py --steps {steps} "
                     f"--lagrange-lr {meta.get('lagrange_lr', lagrange_lr):g} --tasks {task}",
    }


def main() -> None:
    import torch

    from prefine_core.bench import BENCH_DIR
    from prefine_core.report import machine_line, markdown_table, write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="PPO-Lagrangian env steps (default 1000000)")
    parser.add_argument("--lagrange-lr", type=float, default=0.005, help="multiplier step size (default 0.005)")
    parser.add_argument("--tasks", nargs="*", help="task ids (default: every finished benchmark)")
    args = parser.parse_args()
    if args.steps <= 0 or args.lagrange_lr <= 0:
        parser.error("--steps and --lagrange-lr must be positive")
    torch.set_num_threads(1)
    # The main run of each task (data/bench/<task>), not extra runs in other folders.
    results = [json.loads(p.read_text()) for p in sorted(BENCH_DIR.glob("*/result.json"))]
    results = [r for r in results if Path(r["config"]["out_dir"]).name == r["task"]]
    results = [r for r in results if r.get("complete")]
    if not [r for r in results if not args.tasks or r["task"] in args.tasks]:
        parser.error(f"no finished benchmark under {BENCH_DIR} for {args.tasks or 'any task'}")
    rows = []
    for result in results:
        # Runs with other step counts already in the task's folder (e.g. 1M, then 10M where 1M was too
        # short) stay in the table beside the requested one; their training is cached, not repeated.
        done = sorted(int(d.name.rsplit("-steps", 1)[1]) for d in (BENCH_DIR / result["task"]).glob("matched-lagrangian-limit*-steps*")
                      if d.name.startswith(f"matched-lagrangian-limit{_prefine_cost(result):g}-") and (d / "lagrangian.json").is_file())
        wanted = {args.steps} if not args.tasks or result["task"] in args.tasks else set()  # others: cached runs only
        rows += [matched_row(result, steps, args.lagrange_lr) for steps in sorted({*done, *wanted})]
    command = "python scripts/bench_matched_lagrangian.py " + " ".join(sys.argv[1:])
    write_section("matched-lagrangian", "\n".join([
        "## PPO-Lagrangian at PREFINE's own cost level", "",
        f"Table written {machine_line()}, by `{command.strip()}`.", "",
        "The benchmark's Lagrangian aims at cost 25; this one is retrained from scratch (seed 0) with its limit set to "
        "PREFINE's mean cost at the largest budget, and evaluated like every policy above (10 deterministic "
        "episodes from seed 10 000), so that the return comparison is at the same cost level. A Lagrangian "
        "ends near, not at, its limit: compare its cost column too.", "",
        markdown_table([{k: v for k, v in r.items() if k != "reproduce"} for r in rows]), "",
        "Each row, as trained (cached runs are read back, not retrained):", "",
        *[f"- {r['task']}, {r['Lagrangian env steps']} env steps: `{r['reproduce']}`" for r in rows], ""]))
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
