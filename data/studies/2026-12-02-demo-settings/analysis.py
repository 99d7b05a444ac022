"""The demo-settings study's verdict, from its committed results (README.md has the rule, written before the run).

    .venv/bin/python data/studies/2026-12-02-demo-settings/analysis.py [results.json] [--limit-seconds 120]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def summary(task: dict) -> dict:
    """Per settings (by name): episodes within the limit summed over seeds, mean cost and return after, the slowest
    fine-tune, and the checkpoints chosen."""
    out = {}
    for run in task["runs"]:
        name = json.dumps(run["settings"], sort_keys=True) if run["settings"] else "demo"
        s = out.setdefault(name, {"within": 0, "episodes": 0, "costs": [], "returns": [], "seconds": [], "steps": [],
                                  "before_return": run["before"]["return_mean"], "before_cost": run["before"]["cost_mean"]})
        s["within"] += sum(c <= run["cost_limit"] for c in run["after"]["costs"])
        s["episodes"] += len(run["after"]["costs"])
        s["costs"].append(run["after"]["cost_mean"])
        s["returns"].append(run["after"]["return_mean"])
        s["seconds"].append(run["finetune_seconds"])
        s["steps"].append(run["selected_step"])
    for s in out.values():
        s["cost"], s["return"] = sum(s["costs"]) / len(s["costs"]), sum(s["returns"]) / len(s["returns"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default=str(HERE / "results.json"))
    parser.add_argument("--limit-seconds", type=float, default=120.0)
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text())["results"]
    better, losses, slow = 0, 0, False
    for task in results:
        settings = summary(task)
        demo = settings.pop("demo")
        [(name, candidate)] = settings.items()
        print(f"{task['task']} (before: return {demo['before_return']:.1f}, cost {demo['before_cost']:.1f}; "
              f"prepare {task['prepare_seconds']:.0f} s, {task['decided_pairs']} decided pairs)")
        for label, s in (("demo", demo), (name, candidate)):
            print(f"  {label}: within the limit {s['within']} of {s['episodes']} episodes, cost {s['cost']:.1f}, "
                  f"return {s['return']:.1f}, fine-tune ≤ {max(s['seconds']):.0f} s, checkpoints {s['steps']}")
        wins = candidate["within"] > demo["within"] and candidate["cost"] < demo["cost"]
        lost = candidate["return"] < 0.9 * demo["return"]
        better, losses, slow = better + wins, losses + lost, slow or max(candidate["seconds"]) > args.limit_seconds
        print(f"  candidate: {'better' if wins else 'not better'}{', loses > 10 % of the return' if lost else ''}")
    adopted = better >= 2 and not losses and not slow
    print(f"better on {better} of {len(results)} tasks, a return loss on {losses}, "
          f"{'a fine-tune over' if slow else 'every fine-tune within'} {args.limit_seconds:.0f} s: "
          f"{'adopted' if adopted else 'not adopted'}")


if __name__ == "__main__":
    main()
