"""CLI commands over the foundation: pretrain, rollout, render, evaluate."""
from __future__ import annotations

import argparse
from pathlib import Path

from prefine_core.cli.args import Progress, existing_file, non_negative_float, non_negative_int, positive_int


def _pretrain(args: argparse.Namespace) -> dict:
    from prefine_core.pretrain import PPOConfig, train_ppo

    if not str(args.out).endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {args.out}")
    config = PPOConfig(
        task_id=args.task, total_steps=args.steps, seed=args.seed, cost_penalty=args.cost_penalty,
        cost_limit=args.cost_limit, snapshot_every=args.snapshot_every,
    )
    bar = Progress(config.total_steps, f"PPO {config.task_id}")
    try:
        summary = train_ppo(config, args.out, on_progress=lambda s: bar.update_to(
            s["step"], ret=s["return_mean"], cost=s["cost_mean"], len=s["length_mean"]))
    finally:
        bar.close()
    return summary


def register(command) -> None:
    p = command("pretrain", "train a reference or behaviour policy with PPO")
    p.add_argument("--task", required=True, help="Safety-Gymnasium task id, e.g. SafetyHalfCheetahVelocity-v1")
    p.add_argument("--steps", type=positive_int, default=300_000, help="environment steps (default 300000)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default 0)")
    p.add_argument("--cost-penalty", type=non_negative_float, default=0.0, help="train on reward − W·cost (default 0)")
    p.add_argument("--cost-limit", type=non_negative_float, default=None, help="PPO-Lagrangian towards this episode cost")
    p.add_argument("--snapshot-every", type=non_negative_int, default=0, help="save a snapshot every N steps")
    p.add_argument("--out", required=True, help="where to write the .safetensors policy")
    p.set_defaults(handler=_pretrain)
