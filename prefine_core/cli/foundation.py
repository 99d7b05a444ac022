"""CLI commands over the foundation: pretrain, rollout, render, evaluate."""
from __future__ import annotations

import argparse
from pathlib import Path

from prefine_core.cli.args import (MAX_EPISODES, MAX_FRAME_SIZE, MIN_FRAME_SIZE, Progress, episode_count, existing_file,
                                   finite_float, folder_to_write, frame_size, non_negative_float, non_negative_int,
                                   number_between, output_file, positive_float, positive_int, seed,
                                   whole_number_between)
from prefine_core.policy import LOG_STD_MAX, LOG_STD_MIN
from prefine_core.envs import MAX_SEED


def _pretrain(args: argparse.Namespace) -> dict:
    import torch

    from prefine_core.pretrain import PPOConfig, train_ppo

    torch.set_num_threads(1)  # small networks: more threads only fight over the cores (4× slower on 2 cores)

    if not str(args.out).endswith(".safetensors"):
        raise ValueError(f"--out must end in .safetensors, got {args.out}")
    if args.out.exists() and not args.overwrite:  # a shipped reference, say: every workspace's clips name it
        raise ValueError(f"--out {args.out} exists; give a new path, or add --overwrite to replace that file")
    config = PPOConfig(
        task_id=args.task, total_steps=args.steps, seed=args.seed, cost_penalty=args.cost_penalty,
        cost_limit=args.cost_limit, snapshot_every=args.snapshot_every,
        init_from=str(args.init) if args.init else None, penalty_floor=args.penalty_floor,
        speed_cap=args.speed_cap, lagrange_lr=args.lagrange_lr, init_log_std=args.init_log_std,
    )
    with Progress(config.total_steps, f"PPO {config.task_id}") as bar:
        return train_ppo(config, args.out, on_progress=lambda s: bar.update_to(
            s["step"], ret=s["return_mean"], cost=s["cost_mean"], len=s["length_mean"]))


def register(command) -> None:
    from prefine_core.pretrain import MAX_TOTAL_STEPS, PPOConfig

    p = command("pretrain", "train a reference or behaviour policy with PPO")
    p.add_argument("--task", required=True, help="Safety-Gymnasium task id, e.g. SafetyHalfCheetahVelocity-v1")
    p.add_argument("--steps", type=whole_number_between(1, MAX_TOTAL_STEPS), default=300_000,
                   help=f"environment steps, 1 to {MAX_TOTAL_STEPS} (default 300000), rounded up to whole PPO rollouts "
                        f"of {PPOConfig.num_envs * PPOConfig.rollout_steps} steps")
    p.add_argument("--seed", type=seed, default=0, help="random seed")
    p.add_argument("--cost-penalty", type=non_negative_float, default=0.0, help="train on reward − W·cost")
    p.add_argument("--cost-limit", type=non_negative_float, default=None, help="PPO-Lagrangian towards this episode cost (default: none, reward only)")
    p.add_argument("--snapshot-every", type=non_negative_int, default=0, help="save a snapshot every N steps (default 0: none)")
    p.add_argument("--penalty-floor", type=finite_float, default=None,
                   help="lower bound on a costly step's penalised reward (0 stops 'fall on purpose' in Hopper-like tasks; default: none)")
    p.add_argument("--speed-cap", type=positive_float, default=None,
                   help="reward forward speed only up to this many m/s (velocity tasks; a slow behaviour policy; default: no cap)")
    p.add_argument("--lagrange-lr", type=positive_float, default=0.05,
                   help="step size of the Lagrange multiplier with --cost-limit")
    p.add_argument("--init-log-std", type=number_between(LOG_STD_MIN, LOG_STD_MAX), default=-0.5,
                   help=f"initial log σ of the actor, {LOG_STD_MIN:g} to {LOG_STD_MAX:g} (default -0.5)")
    p.add_argument("--init", type=existing_file, default=None, help="start from this policy (e.g. slow a reference down; default: a new one)")
    p.add_argument("--out", type=output_file, required=True,
                   help="where to write the .safetensors policy, in a folder that exists")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists (refused otherwise)")
    p.set_defaults(handler=_pretrain)
    _register_policy_commands(command)


def _rollout(args: argparse.Namespace) -> dict:
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import load_policy
    from prefine_core.rollout import collect, save_trajectory

    _check_episode_seeds(args)
    policy = load_policy(args.policy)
    episodes = []
    with Progress(args.episodes, "rollout") as bar, SafetyTask(policy.meta.task_id) as task:
        for i in range(args.episodes):
            episode_seed = args.seed + i
            trajectory = collect(policy, task, seed=episode_seed, deterministic=args.deterministic)
            row = {"seed": episode_seed, "return": trajectory.total_return, "cost": trajectory.total_cost,
                   "length": trajectory.length, "fell": trajectory.fell}
            if args.out_dir:
                trajectory_id = f"{Path(args.policy).stem}_seed{episode_seed}"
                row["path"] = str(save_trajectory(trajectory, args.out_dir, trajectory_id))
            episodes.append(row)
            bar.update_to(i + 1)
    return {"task_id": policy.meta.task_id, "policy": str(args.policy), "episodes": episodes}


def _check_episode_seeds(args: argparse.Namespace) -> None:
    """Refuse ``--seed`` where its ``--episodes`` episodes (seeds seed, seed+1, …) go past the largest seed, up front:
    it was found out only after the episodes before it, without naming the flag."""
    last = args.seed + args.episodes - 1
    if last > MAX_SEED:
        raise ValueError(f"--seed {args.seed} with --episodes {args.episodes} goes up to seed {last}; the largest is "
                         f"{MAX_SEED}")


def _render(args: argparse.Namespace) -> dict:
    import time

    from prefine_core.policy import load_policy
    from prefine_core.render import record, record_pair, write_clip_video, write_pair_video

    if not str(args.out).endswith(".mp4"):
        raise ValueError(f"--out must end in .mp4, got {args.out}")
    if args.seed_b is not None and args.policy_b is None:
        raise ValueError("--seed-b is the seed of --policy-b's clip: give --policy-b too (the same file as --policy "
                         "renders one policy on two seeds), or drop --seed-b")
    started = time.perf_counter()
    policy = load_policy(args.policy)
    options = dict(deterministic=args.deterministic, max_steps=args.steps, size=args.size)
    if args.policy_b is None:
        clip, frames = record(policy, seed=args.seed, **options)
        write_clip_video(frames, clip.costs, args.out)
        result = {"task_id": policy.meta.task_id, "steps": clip.length, "cost": clip.total_cost}
    else:
        other = load_policy(args.policy_b, task_id=policy.meta.task_id)
        seed_b = args.seed if args.seed_b is None else args.seed_b
        (clip, frames), (clip_b, frames_b) = record_pair(policy, other, args.seed, seed_b, **options)
        write_pair_video(frames, clip.costs, frames_b, clip_b.costs, args.out)
        result = {"task_id": policy.meta.task_id, "steps": clip.length, "cost": clip.total_cost,
                  "steps_b": clip_b.length, "cost_b": clip_b.total_cost}
    return {**result, "out": str(args.out), "seconds": round(time.perf_counter() - started, 3)}


def _evaluate(args: argparse.Namespace) -> dict:
    from prefine_core.evaluate import evaluate_policy
    from prefine_core.policy import load_policy

    _check_episode_seeds(args)
    policy = load_policy(args.policy)
    with Progress(args.episodes, "evaluate") as bar:
        result = evaluate_policy(policy, episodes=args.episodes, seed=args.seed, cost_limit=args.cost_limit,
                                 deterministic=not args.stochastic, on_episode=lambda i, _: bar.update_to(i))
    return {**result, "policy": str(args.policy)}


def _info(args: argparse.Namespace) -> dict:
    from dataclasses import asdict

    from prefine_core.policy import load_policy

    return asdict(load_policy(args.policy).meta)  # the whole file checked, as every command that uses it checks it


def _register_policy_commands(command) -> None:
    p = command("rollout", "roll out a policy for seeded episodes (its task comes from its metadata)")
    p.add_argument("--policy", type=existing_file, required=True, help="policy .safetensors file")
    p.add_argument("--episodes", type=episode_count, default=1, help=f"episodes, 1 to {MAX_EPISODES}")
    p.add_argument("--seed", type=seed, default=0, help="first seed; episode i uses seed+i")
    p.add_argument("--deterministic", action="store_true", help="take the mean action instead of sampling")
    p.add_argument("--out-dir", type=folder_to_write, default=None,
                   help="save each trajectory as <out-dir>/<policy>_seed<S>.npz (a folder, made in one that exists)")
    p.set_defaults(handler=_rollout)

    p = command("render", "render an episode (or, with --policy-b, a synchronised pair) to an H.264 mp4")
    p.add_argument("--policy", type=existing_file, required=True, help="policy .safetensors file")
    p.add_argument("--policy-b", type=existing_file, default=None, help="second policy: render a side-by-side pair")
    p.add_argument("--seed", type=seed, default=0, help="seed")
    p.add_argument("--seed-b", type=seed, default=None, help="seed of the second clip (default --seed)")
    p.add_argument("--steps", type=positive_int, default=200, help="steps to render (default 200; fewer when the episode ends first)")
    p.add_argument("--size", type=frame_size, default=256, help=f"frame width and height in pixels, {MIN_FRAME_SIZE} to {MAX_FRAME_SIZE}")
    p.add_argument("--deterministic", action="store_true", help="take the mean action")
    p.add_argument("--out", type=output_file, required=True, help="output .mp4 path, in a folder that exists")
    p.set_defaults(handler=_render)

    p = command("evaluate", "evaluate a policy on fixed seeds: return, cost, violation and fall rates, deterministic actions unless --stochastic")
    p.add_argument("--policy", type=existing_file, required=True, help="policy .safetensors file")
    p.add_argument("--episodes", type=episode_count, default=10, help=f"episodes, 1 to {MAX_EPISODES}")
    p.add_argument("--seed", type=seed, default=10_000, help="first evaluation seed")
    p.add_argument("--cost-limit", type=positive_float, default=25.0, help="κ > 0 for the violation rate")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the mean")
    p.set_defaults(handler=_evaluate)

    p = command("info", "print a policy's metadata")
    p.add_argument("--policy", type=existing_file, required=True, help="policy .safetensors file")
    p.set_defaults(handler=_info)
