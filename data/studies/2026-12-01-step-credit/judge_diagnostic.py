"""Diagnostic behind session 9's note on the step cost as a checkpoint judge (never used to choose): the fitted step
cost on label set 60 (50 pairs), the anchors' clip costs, and Bradley–Terry verdicts σ(Ĉ(anchor) − Ĉ(clip)) of
200-step windows of deterministic validation episodes (seed 9 000) of the reference and the behaviour policies;
then, at 200 pairs on label sets 64–66, the true cost of the anchors (net wins, as the trainer ranks them) against
the anchors Bradley–Terry strengths would pick.

    .venv/bin/python data/studies/2026-12-01-step-credit/judge_diagnostic.py [TASK_ID]
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
torch.set_num_threads(1)
from prefine_core.bench import BenchConfig, build_pool, label_pairs, reference_and_behaviours  # noqa: E402
from prefine_core.credit import _padded, clip_costs, fit_step_cost  # noqa: E402
from prefine_core.envs import SafetyTask  # noqa: E402
from prefine_core.rollout import collect  # noqa: E402
from prefine_core.trainer import PreferenceData, _clip_key  # noqa: E402

task_id = sys.argv[1] if len(sys.argv) > 1 else "SafetyHalfCheetahVelocity-v1"
config = BenchConfig(task_id=task_id)
reference, behaviours = reference_and_behaviours(config, lambda m: None)
pool = build_pool({"reference": (reference, 1.0), **{k: (p, 1.0) for k, p in behaviours.items()}}, config)
cost = lambda model, clip: float(clip_costs(model, *_padded([clip])))  # noqa: E731

pairs = label_pairs(pool, 50, 60)
model = fit_step_cost(pairs, seed=1)
anchors = PreferenceData.from_pairs(pairs).anchors()
print("anchors: model cost", [round(cost(model, a), 1) for a in anchors], "true cost", [float(a.costs.sum()) for a in anchors])
with SafetyTask(task_id) as task:
    for name, policy in [("reference", reference), *behaviours.items()]:
        episode = collect(policy, task, seed=9_000, deterministic=True)
        windows = [episode.window(s, 200) for s in range(0, episode.length, 200)]
        print(name, [(round(cost(model, w), 1), float(w.costs.sum()),
                      round(float(torch.sigmoid(torch.tensor(cost(model, anchors[0]) - cost(model, w)))), 2)) for w in windows])

for seed in (64, 65, 66):
    pairs = label_pairs(pool, 200, seed)
    clips = {}
    for w, l in pairs:
        clips.setdefault(_clip_key(w), w), clips.setdefault(_clip_key(l), l)
    index = {k: i for i, k in enumerate(clips)}
    win = torch.tensor([index[_clip_key(w)] for w, _ in pairs])
    lose = torch.tensor([index[_clip_key(l)] for _, l in pairs])
    strength = torch.zeros(len(clips), requires_grad=True)
    optimizer = torch.optim.Adam([strength], lr=0.05)
    for _ in range(2000):
        loss = -torch.nn.functional.logsigmoid(strength[win] - strength[lose]).sum() + 0.5 * (strength ** 2).sum()
        optimizer.zero_grad(), loss.backward(), optimizer.step()
    ranked = [list(clips.values())[i] for i in torch.argsort(strength.detach(), descending=True)[:10]]
    mean_cost = lambda cs: round(float(np.mean([c.costs.sum() for c in cs])), 1)  # noqa: E731
    print(f"label set {seed}: anchors by net wins cost {mean_cost(PreferenceData.from_pairs(pairs).anchors())}, "
          f"by Bradley–Terry strength {mean_cost(ranked)} (per 200-step clip)")
