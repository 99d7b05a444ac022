"""The demo-settings study's verdicts, from its committed results (README.md has each round's rule, written before
the round ran).

    .venv/bin/python data/studies/2026-12-02-demo-settings/analysis.py            # every round
    .venv/bin/python data/studies/2026-12-02-demo-settings/analysis.py --round 2  # one round
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: BENCHMARKS.md's PPO-Lagrangians (limit 25, from scratch): the return yardstick of rounds 2 and 3.
LAGRANGIAN_RETURN = {"SafetyHalfCheetahVelocity-v1": 2630, "SafetyHopperVelocity-v1": 1612, "SafetyPointCircle1-v0": 28.3}
SECONDS = 120.0
PREPARE_MARGIN = 30.0


def summary(task: dict) -> dict:
    """Per settings (by name): episodes within the limit summed over seeds, mean cost and return after, falls,
    the slowest fine-tune, and the checkpoints chosen."""
    out = {}
    for run in task["runs"]:
        name = json.dumps(run["settings"], sort_keys=True) if run["settings"] else "demo"
        s = out.setdefault(name, {"within": 0, "episodes": 0, "falls": 0.0, "costs": [], "returns": [], "seconds": [],
                                  "steps": [], "before_return": run["before"]["return_mean"],
                                  "before_cost": run["before"]["cost_mean"]})
        s["within"] += sum(c <= run["cost_limit"] for c in run["after"]["costs"])
        s["episodes"] += len(run["after"]["costs"])
        s["falls"] += run["after"]["fall_rate"] * len(run["after"]["costs"])
        s["costs"].append(run["after"]["cost_mean"])
        s["returns"].append(run["after"]["return_mean"])
        s["seconds"].append(run["finetune_seconds"])
        s["steps"].append(run["selected_step"])
    for s in out.values():
        s["cost"], s["return"] = sum(s["costs"]) / len(s["costs"]), sum(s["returns"]) / len(s["returns"])
    return out


def show(task: dict, name: str, s: dict) -> None:
    print(f"  {name}: within the limit {s['within']} of {s['episodes']} episodes, cost {s['cost']:.1f}, return "
          f"{s['return']:.1f}, falls {s['falls']:.0f}, fine-tune ≤ {max(s['seconds']):.0f} s, checkpoints {s['steps']}")


def round_1(results: list[dict]) -> None:
    """The candidate fine-tune settings against the demo's, on the same pool and labels (round 1's rule)."""
    better, losses, slow = 0, 0, False
    for task in results:
        settings = summary(task)
        demo = settings.pop("demo")
        [(name, candidate)] = settings.items()
        print(f"{task['task']} (before: return {demo['before_return']:.1f}, cost {demo['before_cost']:.1f}; "
              f"prepare {task['prepare_seconds']:.0f} s, {task['decided_pairs']} decided pairs)")
        show(task, "demo", demo)
        show(task, name, candidate)
        wins = candidate["within"] > demo["within"] and candidate["cost"] < demo["cost"]
        lost = candidate["return"] < 0.9 * demo["return"]
        better, losses, slow = better + wins, losses + lost, slow or max(candidate["seconds"]) > SECONDS
        print(f"  candidate: {'better' if wins else 'not better'}{', loses > 10 % of the return' if lost else ''}")
    adopted = better >= 2 and not losses and not slow
    print(f"round 1: better on {better} of {len(results)} tasks, a return loss on {losses}, "
          f"{'a fine-tune over' if slow else 'every fine-tune within'} {SECONDS:.0f} s: "
          f"{'adopted' if adopted else 'not adopted'}")


def against_round_1(results: list[dict], baseline: list[dict], label: str) -> dict[str, int]:
    """Each combination of a round 2 or 3 against round 1's demo rows (rounds 2 and 3's rule); returns the total
    episodes within the limit of each combination that passes."""
    base = {task["task"]: (summary(task)["demo"], task["prepare_seconds"]) for task in baseline}
    names = list(summary(results[0]))
    verdicts = {name: {"better": 0, "fails": []} for name in names}
    for task in results:
        demo, prepare = base[task["task"]]
        lagrangian = LAGRANGIAN_RETURN[task["task"]]
        print(f"{task['task']} (pool {task['pool']}; prepare {task['prepare_seconds']:.0f} s against {prepare:.0f} s; "
              f"{task['decided_pairs']} decided pairs; Lagrangian's return {lagrangian})")
        show(task, "round 1's demo rows", demo)
        for name, s in summary(task).items():
            show(task, name, s)
            v = verdicts[name]
            v["better"] += s["within"] > demo["within"] and s["cost"] < demo["cost"]
            if s["return"] < 0.9 * lagrangian <= demo["return"]:
                v["fails"].append(f"{task['task']}: return under 90 % of the Lagrangian's")
            if s["falls"] > demo["falls"]:
                v["fails"].append(f"{task['task']}: more falls")
            if max(s["seconds"]) > SECONDS:
                v["fails"].append(f"{task['task']}: a fine-tune over {SECONDS:.0f} s")
            if task["prepare_seconds"] > prepare + PREPARE_MARGIN:
                v["fails"].append(f"{task['task']}: prepared {task['prepare_seconds'] - prepare:.0f} s slower")
    passed = {}
    for name, v in verdicts.items():
        ok = v["better"] >= 2 and not v["fails"]
        within = sum(summary(task)[name]["within"] for task in results)
        print(f"{label}, {name}: better on {v['better']} of {len(results)} tasks; "
              f"{'; '.join(v['fails']) or 'no condition broken'}: {'passes' if ok else 'does not pass'} "
              f"({within} episodes within the limit in all)")
        if ok:
            passed[name] = within
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round", type=int, choices=(1, 2, 3, 4), default=None)
    args = parser.parse_args()
    read = lambda n: json.loads((HERE / f"results-round{n}.json").read_text())["results"]  # noqa: E731
    if args.round in (None, 1):
        round_1(read(1))
    passed = {}
    for n in (2, 3, 4):
        if args.round in (None, n) and (HERE / f"results-round{n}.json").is_file():
            passed.update({f"round {n}, {name}": within
                           for name, within in against_round_1(read(n), read(1), f"round {n}").items()})
    if args.round is None:
        print(f"taken: {max(passed, key=passed.get)}" if passed else "taken: none; the demo keeps its settings")


if __name__ == "__main__":
    main()
