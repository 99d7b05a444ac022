#!/usr/bin/env python
"""Feasibility study: a constrained-RL stage after PREFINE, on VALIDATION seeds (9 500…) only.

PREFINE's chosen checkpoint is trained on by PPO with the task's own reward minus k·s·p(s, a), where p is the step
cost fitted to the same labels (``prefine_core.credit``: 0 as safe as the safest labelled steps, 1 as unsafe as the
most unsafe) and s the winners' mean |reward| per step, so that k reads "a step as unsafe as the worst labelled
ones costs k average steps of reward". ``--true-cost`` trains on the environment's cost instead (an upper bound
that the product could not use). One JSON line per evaluated policy.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    import numpy as np
    import torch

    from prefine_core.baselines import method_config
    from prefine_core.bench import BENCH_DIR, BenchConfig, benchmark_pool, label_pairs, reference_and_behaviours
    from prefine_core.envs import SafetyTask
    from prefine_core.rollout import collect
    from prefine_core.credit import fit_step_cost, unsafe_score
    from prefine_core.evaluate import evaluate_policy
    from prefine_core.policy import LOG_STD_MAX, LOG_STD_MIN, load_policy, save_policy
    from prefine_core.prefine import PrefineConfig
    from prefine_core.pretrain import PPOConfig, train_ppo
    from prefine_core.teachers import safety_judge
    from prefine_core.trainer import PreferenceData, PrefineTrainer

    parser = argparse.ArgumentParser()
    parser.add_argument("--task", required=True)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--k", type=float, nargs="+", default=[2.0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--start", default="prefine", choices=["prefine", "bc"])
    parser.add_argument("--true-cost", action="store_true")
    parser.add_argument("--limit-ratio", type=float, default=None,
                        help="PPO-Lagrangian: limit = this × the start policy's learned episode cost, λ starts at k")
    parser.add_argument("--lagrange-lr", type=float, default=0.1)
    parser.add_argument("--start-log-std", type=float, default=None,
                        help="set the start policy's log σ to this first (less exploration noise than BC left it)")
    parser.add_argument("--penalty-floor", type=float, default=None,
                        help="no step's shaped reward below this where it has cost (0: falling never pays)")
    parser.add_argument("--baselines", action="store_true", help="also evaluate PREFINE and BC themselves")
    args = parser.parse_args()
    positive = [("--pairs", args.pairs), ("--steps", args.steps), ("--lr", args.lr), ("--lagrange-lr", args.lagrange_lr),
                *[("--k", k) for k in args.k]]
    if args.limit_ratio is not None:
        positive.append(("--limit-ratio", args.limit_ratio))
    for flag, value in positive:
        if not (math.isfinite(value) and value > 0):
            parser.error(f"{flag} must be positive, got {value}")
    if min(args.seeds) < 0 or args.warmup < 0:
        parser.error("--seeds and --warmup must not be negative")
    if args.start_log_std is not None and not LOG_STD_MIN <= args.start_log_std <= LOG_STD_MAX:
        parser.error(f"--start-log-std must be from {LOG_STD_MIN:g} to {LOG_STD_MAX:g}, got {args.start_log_std}")
    if args.penalty_floor is not None and not math.isfinite(args.penalty_floor):
        parser.error(f"--penalty-floor must be a finite reward, got {args.penalty_floor}")
    torch.set_num_threads(1)
    try:
        config = BenchConfig(task_id=args.task)
    except ValueError as exc:
        parser.error(str(exc))
    out = BENCH_DIR / "validation" / args.task
    reference, behaviours = reference_and_behaviours(config, lambda m: print(m, file=sys.stderr))
    pool = benchmark_pool(reference, behaviours, config)

    def report(name: str, path: str, seed: int, **extra) -> None:
        ev = evaluate_policy(load_policy(path, args.task), args.task, episodes=10, seed=9_500)
        print(json.dumps({"task": args.task, "variant": name, "seed": seed, "return": round(ev["return_mean"], 1),
                          "cost": round(ev["cost_mean"], 1), "fall_rate": ev["fall_rate"], **extra}), flush=True)

    for seed in args.seeds:
        pairs = label_pairs(pool, args.pairs, seed)
        data = PreferenceData.from_pairs(pairs)
        starts = {}
        for method in ("prefine", "bc"):
            torch.manual_seed(seed)
            result = PrefineTrainer(reference, data, method_config(method, PrefineConfig(seed=seed)),
                                    out / f"{method}_n{args.pairs}_s{seed}", judge=safety_judge(), name=method).run()
            starts[method] = result["path"]
            if args.baselines:
                report(method, result["path"], seed)
        if args.start_log_std is not None:
            start = load_policy(starts[args.start], args.task)
            with torch.no_grad():
                start.log_std.fill_(args.start_log_std)
            starts[args.start] = str(save_policy(start, out / "rl" / f"{args.start}_s{seed}_logstd{args.start_log_std:g}.safetensors"))
        model = fit_step_cost(pairs, seed=seed)
        scale = float(np.mean([np.abs(w.rewards).mean() for w in data.winners]))
        fall = float(model.fall_penalty() / (model.high - model.low))

        for k in args.k:
            def step_cost(obs, actions, fell, k=k):
                p = unsafe_score(model, torch.as_tensor(obs, dtype=torch.float32), torch.as_tensor(actions))
                return scale * (p.numpy() + fall * fell) * (1.0 if args.limit_ratio is not None else k)

            limit = None
            if args.limit_ratio is not None:
                start = load_policy(starts[args.start], args.task)
                with SafetyTask(args.task) as task:
                    clips = [collect(start, task, seed=9_000 + i) for i in range(4)]
                fell_at = lambda c: np.eye(1, c.length, c.length - 1)[0] * c.terminated  # noqa: E731
                episode_cost = (lambda c: c.costs.sum()) if args.true_cost else (
                    lambda c: step_cost(c.obs, c.actions, fell_at(c)).sum())
                limit = args.limit_ratio * float(np.mean([episode_cost(c) for c in clips]))
            tag = (f"rl_{args.start}_k{k:g}_{'true' if args.true_cost else 'learned'}_t{args.steps}"
                   f"{'' if limit is None else f'_lim{args.limit_ratio:g}'}"
                   f"{'' if args.penalty_floor is None else f'_floor{args.penalty_floor:g}'}"
                   f"{'' if args.start_log_std is None else f'_logstd{args.start_log_std:g}'}_s{seed}")
            ppo = PPOConfig(task_id=args.task, total_steps=args.steps, seed=seed, init_from=starts[args.start],
                            learning_rate=args.lr, critic_warmup=args.warmup, cost_limit=limit,
                            lagrange_lr=args.lagrange_lr, penalty_floor=args.penalty_floor,
                            cost_penalty=k * scale if args.true_cost else k if limit is not None else 1.0, snapshot_every=args.steps // 4)
            summary = train_ppo(ppo, out / "rl" / f"{tag}.safetensors",
                                step_cost=None if args.true_cost else step_cost)
            report(tag, summary["path"], seed, seconds=round(summary["seconds"]), scale=round(scale, 3), fall=round(fall, 2),
                   limit=limit, penalty=round(summary["penalty"], 3), trained_cost=round(summary["trained_cost_mean"], 2))


if __name__ == "__main__":
    main()
