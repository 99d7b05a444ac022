#!/usr/bin/env python
"""How much of each task's benchmark pool keeps within the cost limit: per source, the quantiles of a 200-step clip's
cost, the share of clips at most the limit of 25 per episode scaled to the clip (5 per 200 steps of a 1 000-step
episode, 10 of a 500-step one), and whether those clips are an
episode's first window (the robot still starting up) or later ones (a gait that keeps within it). Rebuilds the pool
as the benchmark does (its seeds, stochastic rollouts); about a minute per task on one core.

    .venv/bin/python data/studies/2026-12-01-hopper-pool/pool_costs.py SafetyHopperVelocity-v1

``--extra-behaviour PATH`` adds one more behaviour policy to the pool, rolled out after the shipped sources (so
their clips stay the benchmark's): how a candidate for the pool is checked before it is shipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))


def main(tasks: list[str], extra: Path | None = None) -> None:
    import torch

    from prefine_core.bench import BenchConfig, build_pool, reference_and_behaviours
    from prefine_core.envs import SafetyTask
    from prefine_core.policy import load_policy

    torch.set_num_threads(1)
    for task in tasks:
        config = BenchConfig(task_id=task)
        reference, behaviours = reference_and_behaviours(config, lambda m: None)
        if extra is not None:
            behaviours[extra.stem] = load_policy(extra, task)
        pool = build_pool({"reference": (reference, 1.0), **{k: (p, 1.0) for k, p in behaviours.items()}}, config)
        with SafetyTask(task) as env:
            episode_steps = config.max_steps or env.max_episode_steps
        limit = 25.0 * 200 / episode_steps
        print(f"{task}: clips at most {limit:g} cost per 200 steps (the limit of 25 per {episode_steps}-step episode)")
        for source in sorted({c.source for c in pool}):
            clips = [c.trajectory for c in pool if c.source == source and not c.trajectory.fell and c.trajectory.length == 200]
            costs = np.array([t.total_cost for t in clips])
            under = [t for t, c in zip(clips, costs) if c <= limit]
            first = sum(t.start == 0 for t in under)
            every = [c.trajectory for c in pool if c.source == source]
            if extra is not None:  # a candidate is also judged by its falls and its pace (return per clip)
                print(f"  {source}: {len(every)} clips, {100 * np.mean([t.fell for t in every]):.0f} % fell; return per "
                      f"clip that did not fall, median {np.median([t.total_return for t in clips]):.0f}")
            print(f"  {source}: {len(clips)} clips that did not fall; cost quantiles 10/25/50/75/90 % "
                  f"{np.percentile(costs, [10, 25, 50, 75, 90]).round(1).tolist()}; within the limit {len(under)} "
                  f"({100 * len(under) / max(len(clips), 1):.0f} %), of which {first} are an episode's first window"
                  + (f"; past the first window {len(under) - first} of {sum(t.start > 0 for t in clips)}" if extra else ""))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", default=["SafetyHopperVelocity-v1"])
    parser.add_argument("--extra-behaviour", type=Path, default=None, metavar="PATH")
    args = parser.parse_args()
    if args.extra_behaviour is not None:  # before any rollout: a wrong file is said at once, by name
        from prefine_core.policy import load_policy

        try:
            task = load_policy(args.extra_behaviour).meta.task_id
        except (OSError, ValueError) as exc:
            parser.error(f"--extra-behaviour: {exc}")
        if args.tasks != [task]:
            parser.error(f"--extra-behaviour is a policy for {task}; check that one task alone")
    main(args.tasks, args.extra_behaviour)
