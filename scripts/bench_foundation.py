"""Foundation benchmark: navigation reset time, pair-video time, and the shipped policies.

    .venv/bin/python scripts/bench_foundation.py

Writes the `foundation` section of BENCHMARKS.md (machine and date included).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from prefine_core.envs import SafetyTask, _import_safety_gymnasium  # noqa: E402
from prefine_core.evaluate import evaluate_policy  # noqa: E402
from prefine_core.policy import load_policy  # noqa: E402
from prefine_core.render import record_pair, write_pair_video  # noqa: E402
from prefine_core.report import machine_line, markdown_table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "data" / "policies"


def reset_times(task_id: str, resets: int = 15, hd_skybox: bool = False) -> list[float]:
    _import_safety_gymnasium()  # first: a plain import of safety_gymnasium fails on Python 3.11
    import safety_gymnasium.world as world
    swapped = world.yaml
    if hd_skybox:
        world.yaml = swapped._yaml  # the upstream behaviour: decode the HD skybox on every reset
    try:
        with SafetyTask(task_id) as task:
            task.reset(seed=0)
            times = []
            for seed in range(1, resets + 1):
                start = time.perf_counter()
                task.reset(seed=seed)
                times.append(time.perf_counter() - start)
    finally:
        world.yaml = swapped
    return times


def pair_video_seconds(policy_path: Path, repeats: int = 3) -> list[float]:
    policy = load_policy(policy_path)
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(repeats):
            start = time.perf_counter()
            (a, fa), (b, fb) = record_pair(policy, policy, 2 * i, 2 * i + 1, max_steps=200, size=256)
            write_pair_video(fa, a.costs, fb, b.costs, Path(folder) / "pair.mp4")
            times.append(time.perf_counter() - start)
    return times


def _training_signal(provenance: dict) -> str:
    if provenance.get("cost_limit") is not None:
        return f"Lagrangian, limit {provenance['cost_limit']:g} (final {provenance.get('final_penalty', 0):.2g})"
    if provenance.get("speed_cap") is not None:
        return f"reward with speed peaking at {provenance['speed_cap']:g} m/s (no cost)"
    penalty = provenance.get("cost_penalty", 0)
    return f"reward − {penalty:g}·cost" if penalty else "reward only"


def shipped_policies(episodes: int = 10) -> list[dict]:
    log = {}
    log_path = POLICIES / "training_log.jsonl"
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            entry = json.loads(line)
            log[Path(entry["path"]).resolve()] = entry
    rows = []
    for path in sorted(POLICIES.glob("*/*.safetensors")):
        policy = load_policy(path)
        result = evaluate_policy(policy, episodes=episodes, seed=10_000, cost_limit=25.0, deterministic=True)
        trained = log.get(path.resolve(), {})
        provenance = policy.meta.provenance
        rows.append({
            "task": policy.meta.task_id, "policy": path.stem,
            "training signal": _training_signal(provenance),
            "steps": provenance.get("steps", ""),
            "train wall s": provenance.get("seconds", trained.get("seconds", "")),
            "return": f"{result['return_mean']:.0f} ± {result['return_std']:.0f}",
            "cost": f"{result['cost_mean']:.0f} ± {result['cost_std']:.0f}",
            "length": result["length_mean"], "cost/step": result["cost_per_step"],
            "fall rate": result["fall_rate"],
            "command": f"`python -m prefine_core pretrain --task {policy.meta.task_id} --steps {provenance.get('total_steps', '?')} "
                       + (f"--cost-limit {provenance['cost_limit']:g} --lagrange-lr {provenance.get('lagrange_lr', 0.05):g} "
                          if provenance.get("cost_limit") is not None
                          else f"--speed-cap {provenance['speed_cap']:g} " if provenance.get("speed_cap") is not None
                          else f"--cost-penalty {provenance.get('cost_penalty', 0)} ")
                       + f"--seed {provenance.get('seed', 0)} --out {path.relative_to(ROOT)}`",
        })
    return rows


def main() -> None:
    torch.set_num_threads(1)
    circle = "SafetyPointCircle1-v0"
    fast, slow = reset_times(circle), reset_times(circle, resets=5, hd_skybox=True)
    reference = POLICIES / "SafetyHalfCheetahVelocity-v1" / "reference.safetensors"
    pair = pair_video_seconds(reference) if reference.exists() else []
    policies = shipped_policies()
    text = f"""## Foundation

Measured {machine_line()}, by `.venv/bin/python scripts/bench_foundation.py`.

| figure | value | floor |
|---|---|---|
| reset of {circle}, median of {len(fast)} (built-in gradient skybox) | {1000 * statistics.median(fast):.1f} ms | ≤ 50 ms |
| the same with upstream's HD skybox, median of {len(slow)} | {1000 * statistics.median(slow):.0f} ms | (for comparison) |
| pair video, 2 × 200 steps at 256×256, simulate + render (two threads) + overlay + H.264 encode, median of {len(pair)} | {statistics.median(pair) if pair else float('nan'):.2f} s | ≤ 3 s |

### Shipped policies (10 episodes, seeds 10000–10009, deterministic actions)

Reference policies are trained on reward only (`--cost-penalty 0`): the unsafe premise of the product.
Behaviour policies are trained on reward − w·cost: slower, safer gaits for the behaviour pool. Not every
penalty gives one: HalfCheetah at w = 0.5 stays as fast as the reference, and penalised Hopper policies
learn to fall (a fall ends the penalty; w = 3 fell in every episode), while a PPO-Lagrangian Hopper stands
still (return ≈ its healthy bonus of 1 per step). The Hopper's safe gait is therefore trained on a forward
reward that peaks at 0.45 m/s, with no cost term (`--speed-cap 0.45`): a slow hop that stays up.

{markdown_table(policies)}
"""
    write_section("foundation", text)
    print(text)


if __name__ == "__main__":
    import argparse

    # takes no options; --help says what it does instead of running it (it rewrites a section of BENCHMARKS.md)
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
