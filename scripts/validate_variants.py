#!/usr/bin/env python
"""PREFINE variants against BC on VALIDATION seeds (9 500…), never the evaluation seeds (10 000…).

This is how a change to PREFINE's defaults is chosen (BENCHMARKS.md, "Settings and why"): the benchmark's pool
and teacher labels of the given label seeds, each variant fine-tuned with its own checkpoint choice, then
10 deterministic episodes from seed 9 500. One JSON line per run.

    .venv/bin/python scripts/validate_variants.py --task SafetyHalfCheetahVelocity-v1 --pairs 200 \
        --seeds 0 1 2 3 --variants prefine bc trust_region logp
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: name -> (benchmark method, changes to its config)
VARIANTS = {
    "prefine": ("prefine", {}),
    "bc": ("bc", {}),
    "bc_net": ("bc_net", {}),
    "pairs": ("pairs", {}),
    "trust_region": ("prefine", {"reference_sync_every": 200}),
    "logp": ("prefine", {"implicit_reward": "logp"}),
    "cosine": ("prefine", {"lr_schedule": "cosine"}),
    "bc_cosine": ("bc", {"lr_schedule": "cosine"}),
    "nearest_winner": ("prefine", {"dispref_target": "nearest_winner"}),
    "nearest_winner_cosine": ("prefine", {"dispref_target": "nearest_winner", "lr_schedule": "cosine"}),
    "val4": ("prefine", {"eval_episodes": 4}),
    "bc_val4": ("bc", {"eval_episodes": 4}),
    "val10": ("prefine", {"eval_episodes": 10}),
    "bc_val10": ("bc", {"eval_episodes": 10}),
    "ema": ("prefine", {"ema_decay": 0.995}),
    "bc_ema": ("bc", {"ema_decay": 0.995}),
    "staged": ("staged", {}),  # a BC stage first, then PREFINE against the policy it chose (start="bc")
    "dispref1": ("prefine", {"dispref_weight": 1.0}),  # the D⁻ term (what BC cannot use) at twice the default weight
    "dispref2": ("prefine", {"dispref_weight": 2.0}),
    "steps12k": ("prefine", {"steps": 12_000, "eval_every": 1_200}),  # three times the steps, as many checkpoints
    "bc_steps12k": ("bc", {"steps": 12_000, "eval_every": 1_200}),
    "credit": ("prefine", {"step_credit": "learned"}),  # per-step credit from a step cost fitted to the labels
}
VALIDATION_SEED = 9_500


def main() -> None:
    import torch

    from prefine_core.baselines import method_config
    from prefine_core.bench import BENCH_DIR, BenchConfig, benchmark_pool, label_pairs, reference_and_behaviours
    from prefine_core.evaluate import EVAL_SEED, evaluate_policy
    from prefine_core.policy import load_policy
    from prefine_core.prefine import PrefineConfig
    from prefine_core.teachers import safety_judge
    from prefine_core.trainer import PreferenceData, PrefineTrainer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=None, help="run folders (default data/bench/validation/<task>)")
    parser.add_argument("--validation-seed", type=int, default=VALIDATION_SEED,
                        help=f"first of the 10 validation episodes' seeds (default {VALIDATION_SEED}; below the evaluation seeds)")
    parser.add_argument("--mistake-rate", type=float, default=0.0,
                        help="share of the teacher's answers swapped (a labeller who errs; default 0, the benchmark's)")
    parser.add_argument("--extra-behaviour", type=Path, default=None, metavar="PATH",
                        help="one more behaviour policy (safetensors + JSON) in the pool, rolled out after the shipped "
                             "sources so that their clips stay as the benchmark's")
    args = parser.parse_args()
    if args.pairs <= 0 or min(args.seeds) < 0:
        parser.error("--pairs must be positive and --seeds not negative")
    if not 0.0 <= args.mistake_rate < 0.5:
        parser.error("--mistake-rate must be in [0, 0.5): at 0.5 the labels say nothing")
    if not 0 <= args.validation_seed <= EVAL_SEED - 10:
        parser.error(f"--validation-seed must be in [0, {EVAL_SEED - 10}]: seeds from {EVAL_SEED} on are the evaluation seeds")
    torch.set_num_threads(1)
    try:
        config = BenchConfig(task_id=args.task)  # reference, behaviours and pool as the benchmark's
    except ValueError as exc:
        parser.error(str(exc))
    out = args.out or BENCH_DIR / "validation" / args.task
    reference, behaviours = reference_and_behaviours(config, lambda m: print(m, file=sys.stderr))
    if args.extra_behaviour:
        try:
            behaviours[args.extra_behaviour.stem] = load_policy(args.extra_behaviour, args.task)
        except (OSError, ValueError) as exc:
            parser.error(f"--extra-behaviour: {exc}")
    pool = benchmark_pool(reference, behaviours, config)
    extra = f"_pool-{args.extra_behaviour.stem}" if args.extra_behaviour else ""  # not the benchmark pool's folders
    for seed in args.seeds:
        data = PreferenceData.from_pairs(label_pairs(pool, args.pairs, seed, mistake_rate=args.mistake_rate))
        noise = f"_m{args.mistake_rate:g}" if args.mistake_rate else ""  # not the noiseless runs' folders
        for name in args.variants:
            method, changes = VARIANTS[name]
            finetune = method_config(method, dataclasses.replace(PrefineConfig(seed=seed), **changes))
            torch.manual_seed(seed)
            result = PrefineTrainer(reference, data, finetune, out / f"{name}_n{args.pairs}_s{seed}{noise}{extra}",
                                    judge=safety_judge(), name=name).run()
            ev = evaluate_policy(load_policy(result["path"], args.task), args.task, episodes=10, seed=args.validation_seed)
            print(json.dumps({"variant": name, "pairs": args.pairs, "seed": seed, "mistake_rate": args.mistake_rate,
                              "validation_seed": args.validation_seed,
                              "extra_behaviour": args.extra_behaviour.stem if args.extra_behaviour else None, "return": round(ev["return_mean"], 1),
                              "cost": round(ev["cost_mean"], 1), "fall_rate": ev["fall_rate"],
                              "violation_rate": ev["violation_rate"],
                              "seconds": round(result["wall_seconds"])}), flush=True)


if __name__ == "__main__":
    main()
