#!/usr/bin/env python
"""Checkpoint-selection rules compared on VALIDATION seeds (9 500…), never the evaluation seeds (10 000…).

A fine-tune keeps every checkpoint and, for each, what the selection may read: the validation return and
length on seeds 9 000… and ``val/safety`` (the teacher's verdicts against the anchors). This script
evaluates every checkpoint of finished run folders (made by ``scripts/validate_variants.py``) on 10
deterministic episodes from seed 9 500 — cached beside the checkpoints in ``selection-<seed>.json`` — and
then reports, per task × variant × rule, the validation return / cost / fall rate of the checkpoint each
rule picks. The "oracle" row (fewest falls, then lowest cost, then highest return, on those very seeds) is no rule: it shows
how much any rule could gain.

``--frontier C …`` adds what no rule can change, the trade-off each method's checkpoints span: per task × variant
and cost level C, the best validation return among a run's checkpoints that did not fall and cost at most C,
averaged over the runs that have one (``runs`` says how many). One method's frontier above another's at every C
means it is the better fine-tune whatever the selection; crossing frontiers mean it is a trade-off.

``--paired A B`` adds A − B seed by seed (same label seed, ``bench.paired_difference``: mean ± standard error, and in
how many seeds A is ahead) for every rule's pick and every frontier level; ``--seeds`` keeps only runs of those label
seeds; ``--export FILE`` writes every checkpoint's figures as JSON lines (the trainer's own choice marked), the record
BENCHMARKS.md's studies keep in ``data/studies/``.

    .venv/bin/python scripts/validate_selection.py data/bench/validation-safety-judge-2/hc ...

The rules and the adoption criterion were fixed before the first run (BENCHMARKS.md, "Settings and why"):

* ``return_within_tolerance`` (today's): highest validation return within 0.1 of the safest.
* ``safest``: the highest ``val/safety``; ties broken by validation return.
* ``fall_free``: today's rule among checkpoints whose validation episodes did not fall (all if none).
* ``smoothed``: today's rule on ``val/safety`` averaged with the neighbouring checkpoints' (a checkpoint
  between two unsafe ones is likely a lucky draw of 10 verdicts).
* ``latest_safe``: the latest checkpoint within 0.1 of the safest.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from prefine_core.bench import paired_difference  # noqa: E402  (the benchmark's own seed-by-seed difference)
from prefine_core.policy import read_meta  # noqa: E402
from prefine_core.trainer import choose_by_safety  # noqa: E402  (the trainer's own rule, and its smoothing)

VALIDATION_SEED = 9_500
EPISODES = 10
TOLERANCE = 0.1


def _within(history: list[dict]) -> list[dict]:
    best = max(h["val/safety"] for h in history)
    return [h for h in history if h["val/safety"] >= best - TOLERANCE]


def return_within_tolerance(history: list[dict], full_length: int) -> dict:
    return choose_by_safety(history, TOLERANCE)


def safest(history: list[dict], full_length: int) -> dict:
    return max(history, key=lambda h: (h["val/safety"], h["eval/return"], h["step"]))


def fall_free(history: list[dict], full_length: int) -> dict:
    upright = [h for h in history if h["eval/length"] >= full_length]
    return choose_by_safety(upright or history, TOLERANCE)


def smoothed(history: list[dict], full_length: int) -> dict:
    return choose_by_safety(history, TOLERANCE, smoothing=1)


def latest_safe(history: list[dict], full_length: int) -> dict:
    return max(_within(history), key=lambda h: h["step"])


RULES = {f.__name__: f for f in (return_within_tolerance, safest, fall_free, smoothed, latest_safe)}


def checkpoint_outcomes(run: Path, task_id: str, seed: int = VALIDATION_SEED) -> dict[int, dict]:
    """Validation outcome of every checkpoint of ``run`` on 10 episodes from ``seed`` (cached)."""
    from prefine_core.evaluate import evaluate_policy
    from prefine_core.policy import load_policy

    cache = run / f"selection-{seed}.json"
    outcomes = {int(k): v for k, v in json.loads(cache.read_text()).items()} if cache.exists() else {}
    for path in sorted((run / "checkpoints").glob("step_*.safetensors")):
        step = int(path.stem.split("_")[1])
        if step not in outcomes:
            ev = evaluate_policy(load_policy(path, task_id), task_id, episodes=EPISODES, seed=seed)
            outcomes[step] = {"return": ev["return_mean"], "cost": ev["cost_mean"], "fall_rate": ev["fall_rate"]}
            cache.write_text(json.dumps(outcomes, indent=1))
    return outcomes


def main() -> None:
    import torch

    from prefine_core.envs import SafetyTask

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding finished run folders")
    parser.add_argument("--validation-seed", type=int, default=VALIDATION_SEED,
                        help=f"first seed of the 10 episodes each checkpoint is evaluated on (default {VALIDATION_SEED})")
    parser.add_argument("--frontier", type=float, nargs="+", default=[], metavar="C",
                        help="also report the best return at validation cost ≤ C among each run's checkpoints")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="only runs of these label seeds")
    parser.add_argument("--paired", nargs=2, metavar=("A", "B"), default=None,
                        help="also variant A − variant B seed by seed, for every rule and frontier level")
    parser.add_argument("--export", type=Path, default=None, metavar="FILE",
                        help="write every checkpoint's validation figures as JSON lines to FILE")
    args = parser.parse_args()
    if any(not np.isfinite(c) or c < 0 for c in args.frontier):
        parser.error("--frontier cost levels must be finite and not negative")
    if not 0 <= args.validation_seed <= 9_990:
        parser.error("--validation-seed must be in [0, 9990]: seeds from 10 000 on are the evaluation seeds")
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        parser.error(f"not a folder of run folders: {', '.join(missing)}")
    torch.set_num_threads(1)
    table: dict[tuple, list[dict]] = defaultdict(list)
    frontier: dict[tuple, list[dict]] = defaultdict(list)
    exported: list[dict] = []
    for folder in args.folders:
        for run in sorted(p for p in folder.iterdir() if (p / "state.json").exists()):
            try:
                variant, seed = run.name.split("_n")[0], int(run.name.rsplit("_s", 1)[1])
            except (IndexError, ValueError):
                print(f"skip {run}: not named <variant>_n<pairs>_s<seed> (as validate_variants.py names runs)", file=sys.stderr)
                continue
            if args.seeds is not None and seed not in args.seeds:
                continue
            try:
                state = json.loads((run / "state.json").read_text())
                config = json.loads((run / "config.json").read_text())
                finished = state["step"] >= config["steps"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"skip {run}: not a readable run ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            if not finished:
                print(f"skip {run}: unfinished", file=sys.stderr)
                continue
            meta = read_meta(run / "policy.safetensors")
            task_id = meta.task_id
            with SafetyTask(task_id) as task:
                full_length = task.max_episode_steps
            outcomes = checkpoint_outcomes(run, task_id, args.validation_seed)
            history = [h for h in state["history"] if h["step"] > 0]
            picks = {name: rule(history, full_length)["step"] for name, rule in RULES.items()}
            picks["oracle"] = min(outcomes, key=lambda s: (outcomes[s]["fall_rate"], outcomes[s]["cost"], -outcomes[s]["return"]))
            for name, step in picks.items():
                table[(task_id, variant, name)].append({"seed": seed, "step": step, **outcomes[step]})
            for level in args.frontier:
                reachable = [o["return"] for o in outcomes.values() if o["fall_rate"] == 0 and o["cost"] <= level]
                if reachable:
                    frontier[(task_id, variant, level)].append({"seed": seed, "return": max(reachable)})
            selection = {h["step"]: h for h in state["history"]}
            exported += [{"task": task_id, "run": run.name, "variant": variant, "seed": seed, "step": step,
                          "chosen": step == meta.provenance.get("step"), "validation_seed": args.validation_seed,
                          "validation_return": round(o["return"], 2), "validation_cost": o["cost"],
                          "validation_fall_rate": o["fall_rate"],
                          "selection_val_safety": selection.get(step, {}).get("val/safety"),
                          "selection_eval_return": round(selection.get(step, {}).get("eval/return", float("nan")), 2)}
                         for step, o in sorted(outcomes.items())]
    for (task_id, variant, name), rows in sorted(table.items()):
        print(json.dumps({"task": task_id, "variant": variant, "rule": name, "runs": len(rows),
                          "return": round(float(np.mean([r["return"] for r in rows])), 1),
                          "cost": round(float(np.mean([r["cost"] for r in rows])), 1),
                          "fall_rate": round(float(np.mean([r["fall_rate"] for r in rows])), 2),
                          "steps": [r["step"] for r in rows]}), flush=True)
    for (task_id, variant, level), rows in sorted(frontier.items()):
        print(json.dumps({"task": task_id, "variant": variant, "frontier_cost_at_most": level, "runs": len(rows),
                          "best_return": round(float(np.mean([r["return"] for r in rows])), 1)}), flush=True)
    if args.paired:
        a, b = args.paired
        groups = [("rule", name, table) for name in [*RULES, "oracle"]] + [("frontier_cost_at_most", c, frontier) for c in args.frontier]
        for task_id in sorted({k[0] for k in table}):
            for label, key, source in groups:
                mine, theirs = source.get((task_id, a, key), []), source.get((task_id, b, key), [])
                line = {"task": task_id, label: key, "paired": f"{a} - {b}"}
                for metric in ("return", "cost") if label == "rule" else ("return",):
                    diff = paired_difference(mine, theirs, metric)
                    line[metric] = None if diff is None else [round(diff[0], 1), round(diff[1], 1)]
                by_seed = {r["seed"]: r["return"] for r in theirs}
                both = [r for r in mine if r["seed"] in by_seed]
                line.update(seeds=len(both), ahead_on_return=sum(r["return"] > by_seed[r["seed"]] for r in both))
                print(json.dumps(line), flush=True)
    if args.export:
        args.export.write_text("".join(json.dumps(r) + "\n" for r in exported))
        print(f"wrote {len(exported)} checkpoints to {args.export}", file=sys.stderr)


if __name__ == "__main__":
    main()
